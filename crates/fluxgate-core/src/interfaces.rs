//! The seed's trait names, so examples written against the Python library translate
//! one to one (`from fluxgate.interfaces import IListener` → `use fluxgate::interfaces::IListener`).
//! The traits carry these names as doc aliases too, so a search of the documentation for
//! `IListener` finds [`Listener`](crate::listeners::Listener).
//!
//! ```
//! use fluxgate_core::interfaces::IListener;
//! use fluxgate_core::listeners::ListenerError;
//! use fluxgate_core::Signal;
//!
//! struct CustomListener;
//! impl IListener for CustomListener {
//!     fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError> {
//!         println!("{}: {} -> {}", signal.circuit_name, signal.old_state, signal.new_state);
//!         Ok(())
//!     }
//! }
//! ```

pub use crate::listeners::AsyncListener as IAsyncListener;
pub use crate::listeners::Listener as IListener;
pub use crate::permits::Permit as IPermit;
pub use crate::retries::Retry as IRetry;
pub use crate::trackers::Tracker as ITracker;
pub use crate::trippers::Tripper as ITripper;
pub use crate::windows::Window as IWindow;
