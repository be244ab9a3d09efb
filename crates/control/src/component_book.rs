//! The status page's components as the control plane keeps them in memory (the store holds them
//! too): which routes of which environment make up each, and so which SLI series a report feeds.

use std::sync::Mutex;

use rampart_api::{ComponentSpec, Report};

use crate::sli::{component_series, environment_series};
use crate::slo::Counts;
use crate::store::{Store, StoreError};

pub struct ComponentBook {
    list: Mutex<Vec<(String, ComponentSpec)>>,
    /// The last environment of the pipeline: a component without one belongs to it.
    last_environment: String,
}

impl ComponentBook {
    pub async fn load(store: &Store, environments: &[String]) -> Result<ComponentBook, StoreError> {
        Ok(ComponentBook {
            list: Mutex::new(store.components().await?),
            last_environment: environments.last().cloned().unwrap_or_default(),
        })
    }

    /// Every component with its spec, by name.
    pub fn all(&self) -> Vec<(String, ComponentSpec)> {
        self.lock().clone()
    }

    /// Replaces the list (after the store changed).
    pub fn replace(&self, list: Vec<(String, ComponentSpec)>) {
        *self.lock() = list;
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().iter().map(|(n, _)| n.clone()).collect()
    }

    /// The components whose traffic is `env`'s.
    pub fn in_environment(&self, env: &str) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, s)| self.environment_of(s) == env)
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn last_environment(&self) -> &str {
        &self.last_environment
    }

    pub fn environment_of<'a>(&'a self, spec: &'a ComponentSpec) -> &'a str {
        spec.environment
            .as_deref()
            .unwrap_or(&self.last_environment)
    }

    /// What one report of `env` adds to which series: the environment's, and each of its
    /// components' (all of the report's requests, or only those of the component's routes).
    pub fn sli_updates(&self, env: &str, r: &Report) -> Vec<(String, Counts)> {
        let counts = |classes: &[u64; 5]| Counts {
            total: classes.iter().sum(),
            failed: classes[4],
        };
        let mut updates = vec![(environment_series(env), counts(&r.requests))];
        for (name, spec) in self.lock().iter() {
            if self.environment_of(spec) != env {
                continue;
            }
            let c = if spec.routes.is_empty() {
                counts(&r.requests)
            } else {
                r.routes
                    .iter()
                    .filter(|(route, _)| spec.routes.contains(route))
                    .fold(Counts::default(), |acc, (_, classes)| {
                        let c = counts(classes);
                        Counts {
                            total: acc.total + c.total,
                            failed: acc.failed + c.failed,
                        }
                    })
            };
            updates.push((component_series(name), c));
        }
        updates
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, ComponentSpec)>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }
}
