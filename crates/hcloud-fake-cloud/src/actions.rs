//! The action engine. An answer that starts work creates its actions (status `running`) and
//! hands a chain of steps to a thread of its own: each step calls the machines (no lock held),
//! waits until the action's duration is over, then applies its effect to the state and marks
//! the action `success` (or `error`). So actions advance on their own clock, polled or not,
//! and stay in the state for the life of the service.

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crate::machines::Machines;
use crate::service::Shared;
use crate::state::{ActionStatus, Failure, State};

/// A change to the state, applied when the action succeeds.
pub type Effect = Box<dyn FnOnce(&mut State) + Send>;
/// The work of one action against the machines; its effect follows.
pub type Job = Box<dyn FnOnce(&dyn Machines) -> anyhow::Result<Effect> + Send>;

/// One action of a chain.
pub struct Step {
    pub action: u64,
    pub job: Job,
    /// Injected by a test: end this action in `error`.
    pub failure: Option<Failure>,
    /// Applied instead of the effect when the action fails (a snapshot that never came).
    pub undo: Option<Effect>,
}

impl Step {
    pub fn new(action: u64, job: Job) -> Step {
        Step {
            action,
            job,
            failure: None,
            undo: None,
        }
    }
}

/// A job that touches no machine.
pub fn effect_only(effect: impl FnOnce(&mut State) + Send + 'static) -> Job {
    Box::new(move |_| Ok(Box::new(effect) as Effect))
}

/// Run `steps` one after another in a new thread. When the chain ends, `server` (if any) is
/// no longer locked by `lock_action`.
pub fn spawn_chain(shared: Arc<Shared>, server: Option<u64>, lock_action: u64, steps: Vec<Step>) {
    thread::spawn(move || {
        let mut failed = false;
        for step in steps {
            let (began, duration) = {
                let mut st = shared.lock_state();
                let Some(a) = st.actions.get_mut(&step.action) else {
                    continue;
                };
                let began = *a.began.get_or_insert_with(Instant::now);
                (began, a.duration)
            };
            let (effect, error) = if failed {
                (
                    None,
                    Some((
                        "action_failed".to_string(),
                        "a previous action failed".to_string(),
                    )),
                )
            } else {
                match (step.failure, (step.job)(shared.machines.as_ref())) {
                    (None, Ok(effect)) => (Some(effect), None),
                    (None, Err(e)) => (None, Some(("action_failed".to_string(), format!("{e:#}")))),
                    (Some(f), Ok(effect)) if f.effect_anyway => {
                        (Some(effect), Some((f.code, f.message)))
                    }
                    (Some(f), _) => (None, Some((f.code, f.message))),
                }
            };
            if let Some(rest) = (began + duration).checked_duration_since(Instant::now()) {
                thread::sleep(rest);
            }
            let mut st = shared.lock_state();
            match (effect, step.undo) {
                (Some(effect), _) => effect(&mut st),
                (None, Some(undo)) => undo(&mut st),
                (None, None) => {}
            }
            if let Some(a) = st.actions.get_mut(&step.action) {
                a.finished = Some(std::time::SystemTime::now());
                a.status = match error {
                    None => ActionStatus::Success,
                    Some((code, message)) => {
                        failed = true;
                        ActionStatus::Error { code, message }
                    }
                };
            }
        }
        if let Some(id) = server {
            let mut st = shared.lock_state();
            if let Some(s) = st.servers.get_mut(&id) {
                if s.busy == Some(lock_action) {
                    s.busy = None;
                }
            }
        }
    });
}
