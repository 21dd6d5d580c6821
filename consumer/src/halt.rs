//! Why the polling thread stops part-way through a batch, and the
//! checkpoints at which a [`FaultInjector`] (tests) may make it stop.

use rdkafka::error::KafkaError;

use crate::bridge::Interrupted;
use crate::control::Control;
use crate::faults::{Action, Checkpoint, FaultInjector};

/// Why a batch's processing stopped half-way.
#[derive(Debug)]
pub(crate) enum Halt {
    Crash(Checkpoint),
    Abort,
    /// A stop was requested while the batch could not be written: it is left
    /// unwritten (it will be read again) and the loop ends.
    Abandon,
    Fatal(KafkaError),
}

impl From<Interrupted> for Halt {
    fn from(interrupted: Interrupted) -> Self {
        match interrupted {
            Interrupted::Aborted => Halt::Abort,
            Interrupted::Stopped => Halt::Abandon,
        }
    }
}

/// The checks made at every stage of a batch: an abrupt stop ends it there,
/// and an installed injector may crash it there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpoints<'a> {
    pub control: &'a Control,
    pub faults: Option<&'a dyn FaultInjector>,
}

impl Checkpoints<'_> {
    pub fn pass(&self, checkpoint: Checkpoint) -> Result<(), Halt> {
        if self.control.aborted() {
            return Err(Halt::Abort);
        }
        self.inject(checkpoint)
    }

    /// Only the injector, for the per-record `Polled` stage (no stop check:
    /// the polling loop checks the stop switches on every turn).
    pub fn inject(&self, checkpoint: Checkpoint) -> Result<(), Halt> {
        let Some(faults) = self.faults else {
            return Ok(());
        };
        match faults.at(&checkpoint) {
            Action::Continue => Ok(()),
            Action::Crash => {
                tracing::warn!(?checkpoint, "injected crash");
                Err(Halt::Crash(checkpoint))
            }
        }
    }
}
