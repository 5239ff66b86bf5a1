//! Feed data (contract sections 4 and 5): the item and its checks (`item`), its JSON form (`wire`), and what
//! Realer answered about it (`answer`).

mod answer;
mod item;
mod wire;

pub(crate) use answer::{parse_batch, parse_single, SingleAnswer};
pub use answer::{FeedOutcome, FeedResult};
pub use item::{check_message_id, generate_message_id, FeedItem, ReportStatus};
pub(crate) use item::{field_error, ItemRef, Prepared};
pub(crate) use wire::write_items_envelope;
