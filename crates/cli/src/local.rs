//! What `rampart up` and the drill both run in-process: gateways as agents of a control plane on
//! this machine, and a version released through the pipeline the way any change would be (when
//! production asks for a second person, an approver signs off).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rampart_api::{ApiClient, ClientError, VersionId};
use rampart_gateway::agent::AgentOptions;

/// Gateway agents running in this process; [`Agents::stop`] drains and ends them.
#[derive(Default)]
pub struct Agents {
    running: Vec<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Agents {
    /// Starts an agent; an error that ends it is printed with `name`.
    pub fn spawn(&mut self, name: String, opts: AgentOptions) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            if let Err(e) = rampart_gateway::agent::run(opts, stopped).await {
                eprintln!("gateway {name} stopped: {e}");
            }
        });
        self.running.push((stop, task));
    }

    pub async fn stop(self) {
        for (stop, task) in self.running {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

/// Makes `version` desired in `env`; when the control plane asks for a second person's approval
/// (a first production config sets listeners and auth), `approver` gives it.
pub async fn deploy_approved(
    op: &ApiClient,
    approver: &ApiClient,
    env: &str,
    version: &VersionId,
) -> Result<()> {
    match op.deploy(env, version, None).await {
        Ok(_) => Ok(()),
        Err(ClientError::Api { code, .. }) if code == "approval_required" => {
            let id = op
                .approvals()
                .await?
                .into_iter()
                .find(|a| a.version == *version && a.approved_by.is_none())
                .map(|a| a.id)
                .context("no approval request")?;
            approver.approve(id).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits until `version` is `env`'s last-known-good: every instance applied it and survived.
pub async fn wait_lkg(
    client: &ApiClient,
    env: &str,
    version: &VersionId,
    within: Duration,
) -> Result<()> {
    let start = Instant::now();
    loop {
        let envs = client.environments().await?;
        if envs
            .iter()
            .any(|e| e.name == env && e.last_known_good.as_ref() == Some(version))
        {
            return Ok(());
        }
        if start.elapsed() > within {
            bail!(
                "{env} did not complete version {} within {within:?}",
                version.short()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
