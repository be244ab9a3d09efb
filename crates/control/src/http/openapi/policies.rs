//! The rollout-policy operations, as the document lists them.

use rampart_api::{Policy, PolicySet};

use super::{Doc, Op, Param};

const ENV: Param = ("env", "path", "string", "environment name");

pub(super) fn policies(d: &mut Doc) {
    let (policy, list, set) = (
        d.json::<Policy>(),
        d.list::<Policy>(),
        d.schema::<PolicySet>(),
    );
    d.op(Op {
        method: "get",
        path: "/v1/environments/{env}/policy",
        summary: "The rollout policy in force: the newest revision, or the default written out",
        role: Some("viewer"),
        params: &[ENV],
        body: None,
        ok: ("200", "the policy", policy.clone()),
        errors: &[("404", "no such environment")],
    });
    d.op(Op {
        method: "put",
        path: "/v1/environments/{env}/policy",
        summary: "Store a new revision of the environment's rollout policy (checked; audited as `policy.set`)",
        role: Some("operator"),
        params: &[ENV],
        body: Some(set),
        ok: ("200", "the stored revision, with what it changed", policy),
        errors: &[
            ("422", "the policy is malformed or invalid (every problem, with its path)"),
            ("409", "the policy changes nothing"),
            ("404", "no such environment"),
        ],
    });
    d.op(Op {
        method: "get",
        path: "/v1/environments/{env}/policy/history",
        summary: "Every stored revision, newest first, each with what it changed",
        role: Some("viewer"),
        params: &[ENV],
        body: None,
        ok: ("200", "revisions", list),
        errors: &[("404", "no such environment")],
    });
}
