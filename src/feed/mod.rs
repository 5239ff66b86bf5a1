//! Feed data (contract sections 4 and 5): the item and its checks (`item`), its JSON form (`wire`), what
//! Realer answered about it (`answer`), and what a 413 from the path can mean (`sizes`).

mod answer;
mod item;
mod sizes;
mod wire;

pub(crate) use answer::{parse_batch, parse_single, SingleAnswer};
pub use answer::{FeedOutcome, FeedResult};
pub use item::{check_message_id, generate_message_id, FeedItem, ReportStatus};
pub(crate) use item::{field_error, ItemRef, Prepared};
pub(crate) use sizes::{PathSizes, Verdict413};
pub(crate) use wire::write_items_envelope;
