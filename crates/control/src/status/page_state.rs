//! The public page's name, address and snapshot: read from the store at most once a second, a
//! stampede of page views sharing one read while one request refreshes it.

use super::*;
use std::sync::Arc;

use crate::error::ControlError;

/// The public status page: what it shows is read from the catalogue, incidents and
/// maintenances into a snapshot that page views share.
pub struct StatusPage {
    pub(crate) store: crate::store::Store,
    pub page: PageState,
    pub(crate) sli: Arc<crate::sli::Sli>,
    pub(crate) catalogue: Arc<crate::alerting::Catalogue>,
    pub(crate) incidents: Arc<crate::alerting::Incidents>,
    pub(crate) maintenances: Arc<crate::status::Maintenances>,
}

impl StatusPage {
    /// The page's base URL (links in feeds, webhooks and emails).
    pub fn public_url(&self) -> String {
        self.page.public_url()
    }

    /// Everything the page shows, read at most once a second (page views in between share it).
    pub async fn snapshot(&self) -> Result<std::sync::Arc<Snapshot>, ControlError> {
        let current = || {
            self.page
                .snapshot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        let cached = current();
        if let Some((at, snap)) = &cached
            && at.elapsed() < SNAPSHOT_TTL
        {
            return Ok(snap.clone());
        }
        // One request reads the store; the others meanwhile serve the snapshot there is.
        let _refreshing = match (self.page.refresh.try_lock(), cached) {
            (Ok(guard), _) => guard,
            (Err(_), Some((_, stale))) => return Ok(stale),
            (Err(_), None) => self.page.refresh.lock().await,
        };
        // Another request may have refreshed it while this one waited.
        if let Some((at, snap)) = current()
            && at.elapsed() < SNAPSHOT_TTL
        {
            return Ok(snap);
        }
        let snap = std::sync::Arc::new(self.read_snapshot().await?);
        *self.page.snapshot.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), snap.clone()));
        Ok(snap)
    }

    async fn read_snapshot(&self) -> Result<Snapshot, ControlError> {
        self.page
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let times = self.store.component_times().await?;
        let components = self
            .catalogue
            .components()
            .await?
            .into_iter()
            .map(|c| {
                let (created_at, updated_at) = times.get(&c.name).cloned().unwrap_or_default();
                ComponentView {
                    days: self.sli.daily(&component_series(&c.name), UPTIME_DAYS),
                    name: c.name,
                    description: c.spec.description,
                    status: c.status,
                    created_at,
                    updated_at,
                }
            })
            .collect();
        let incidents = self.incidents.recent(50).await?;
        let maintenances = self
            .maintenances
            .list()
            .await?
            .into_iter()
            .filter(|m| m.status != "cancelled")
            .collect();
        Ok(Snapshot {
            name: self.page.name.clone(),
            url: self.public_url(),
            updated_at: now(),
            components,
            incidents,
            maintenances,
            rendered: Rendered::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_stampede_reads_the_store_once_per_snapshot_and_renders_each_resource_once() {
        let dir = std::env::temp_dir().join(format!(
            "rampart-snapshot-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        tokio::fs::create_dir_all(&dir).await.expect("dir");
        let control = crate::ControlPlane::open(&dir, &["production".into()])
            .await
            .expect("control plane");
        let page = control.status_page.clone();
        let reads = || page.page.reads();

        // Fifty requests at once with nothing cached: one reads, the others wait for it.
        let first: Vec<_> = futures_util::future::join_all((0..50).map(|_| page.snapshot())).await;
        assert_eq!(reads(), 1);
        let first: Vec<Arc<Snapshot>> = first.into_iter().map(|s| s.expect("snapshot")).collect();
        assert!(first.iter().all(|s| Arc::ptr_eq(s, &first[0])));

        // Each resource renders once per snapshot, however many ask.
        let renders = AtomicUsize::new(0);
        for s in &first {
            let body = s.rendered("page", |_| {
                renders.fetch_add(1, Ordering::Relaxed);
                "page".into()
            });
            assert_eq!(&body[..], b"page");
        }
        assert_eq!(renders.load(Ordering::Relaxed), 1);

        // Once it is stale, one request re-reads while the others serve the stale snapshot.
        tokio::time::sleep(SNAPSHOT_TTL + std::time::Duration::from_millis(50)).await;
        let second: Vec<Arc<Snapshot>> =
            futures_util::future::join_all((0..50).map(|_| page.snapshot()))
                .await
                .into_iter()
                .map(|s| s.expect("snapshot"))
                .collect();
        assert_eq!(reads(), 2);
        let fresh = second.iter().filter(|s| !Arc::ptr_eq(s, &first[0])).count();
        assert_eq!(
            fresh, 1,
            "only the refreshing request waits for the new snapshot"
        );
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
}
