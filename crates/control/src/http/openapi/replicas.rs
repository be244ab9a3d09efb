//! The replicas' operation, as the document lists it.

use rampart_api::Replicas;

use super::{Doc, Op};

/// The replicas' view (several replicas on one PostgreSQL database).
pub(super) fn replicas(d: &mut Doc) {
    let replicas = d.json::<Replicas>();
    d.op(Op {
        method: "get",
        path: "/v1/replicas",
        summary: "Who leads (the lease's holder and epoch) and every replica that announced itself",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "the replicas", replicas),
        errors: &[],
    });
}
