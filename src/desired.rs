//! What Realer wants the device's actuators at (contract sections 3, 3b and 7), behind one type whichever kind
//! of service answered: a newer service's pending desired states (`/desired-states`, each with a `desired_id`
//! to answer), or an older service's catalog values (no `desired_id`: apply, then report the physical value).
//! Also the rules: the decision per state (apply it, or answer it stale), which catalog values are new, and
//! the feed item that answers a state. What they remember (what was answered, the catalog values already
//! acted on) is the outbox module's to store (`DesiredMemory`: in the outbox file when there is one, so that
//! a restart never applies an old sequence again nor undoes a local change; else in memory).

use std::ffi::CStr;
use std::time::Duration;

use serde::Deserialize;

use std::borrow::Cow;

use crate::catalog::{Command, CommandRef, ItemSink};
use crate::error::{Error, Result};
use crate::feed::{ItemRef, ReportStatus};
use crate::json::{self, Int, Text};
use crate::log::Level;
// The memory lives in the outbox file (or in memory without one): the outbox module owns the file.
pub(crate) use crate::outbox::{DesiredMemory, Fallback};
use crate::records::{Record, Records, MAX_INTS};
use crate::time;

/// Which kind of service said what it wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesiredSource {
    /// A newer service: pending desired states from `/desired-states`, each to be answered with its
    /// `desired_id`.
    DesiredStates,
    /// An older service (no `/desired-states`, or no scope for it): the catalog's command values.
    Catalog,
}

/// What to do about one desired state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesiredAction {
    /// Drive the actuator to `value` (when it is not there already), then answer with the physical result:
    /// `applied` (or `rejected` when the device cannot) for a desired state; a plain report of the new
    /// physical value for a catalog value, only when the actuator changed.
    Apply,
    /// Do not apply: expired, or a `sequence_number` not newer than one already answered or listed beside it
    /// for the same command. Answer it `stale`.
    Stale,
}

/// One thing Realer wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredState {
    /// The command whose actuator it is about.
    pub command_id: String,
    /// The value Realer wants; `None` only when a desired state came without one (answer it `rejected`).
    pub value: Option<String>,
    /// The command's `value_type` when the catalog gave it (compare values with
    /// [`crate::catalog::values_equal`]).
    pub value_type: Option<String>,
    /// The desired state to answer; `None` for a catalog value.
    pub desired_id: Option<String>,
    /// Its order among the states of its command (an answer echoes it); `None` when Realer gave none.
    pub sequence_number: Option<i64>,
    /// When it expires, as Realer gave it (or as computed from `expires_in`).
    pub expires_at: Option<String>,
    /// `expires_at` in Unix milliseconds; `None` when absent or unreadable.
    pub expires_at_unix_ms: Option<i64>,
    /// Apply it, or answer it stale.
    pub action: DesiredAction,
}

/// What Realer wants, and from which kind of service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredStates {
    /// Which kind of service answered.
    pub source: DesiredSource,
    /// What it wants, decided (each state's `action`).
    pub states: StateList,
}

/// One thing Realer wants, borrowed from the [`StateList`] that holds it; see [`DesiredState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DesiredStateRef<'a> {
    /// As [`DesiredState::command_id`].
    pub command_id: &'a str,
    /// As [`DesiredState::value`].
    pub value: Option<&'a str>,
    /// As [`DesiredState::value_type`].
    pub value_type: Option<&'a str>,
    /// As [`DesiredState::desired_id`].
    pub desired_id: Option<&'a str>,
    /// As [`DesiredState::sequence_number`].
    pub sequence_number: Option<i64>,
    /// As [`DesiredState::expires_at`].
    pub expires_at: Option<&'a str>,
    /// As [`DesiredState::expires_at_unix_ms`].
    pub expires_at_unix_ms: Option<i64>,
    /// As [`DesiredState::action`].
    pub action: DesiredAction,
}

impl DesiredStateRef<'_> {
    /// As [`DesiredState::answer`].
    pub fn answer(&self, value: &str, status: ReportStatus) -> Result<crate::feed::FeedItem> {
        answer_item(self.command_id, self.desired_id, self.sequence_number, value, status).map(ItemRef::to_owned)
    }

    /// The state with its strings owned.
    pub fn to_owned(&self) -> DesiredState {
        DesiredState {
            command_id: self.command_id.to_string(),
            value: self.value.map(str::to_string),
            value_type: self.value_type.map(str::to_string),
            desired_id: self.desired_id.map(str::to_string),
            sequence_number: self.sequence_number,
            expires_at: self.expires_at.map(str::to_string),
            expires_at_unix_ms: self.expires_at_unix_ms,
            action: self.action,
        }
    }
}

// The slots of a state in its record: its strings, its integers, and its action as the tag. Written by
// `StateList::push`, read by `state_of` and `view`: the only place these numbers stand.
const S_COMMAND_ID: usize = 0;
const S_VALUE: usize = 1;
const S_VALUE_TYPE: usize = 2;
const S_DESIRED_ID: usize = 3;
const S_EXPIRES_AT: usize = 4;
const STRINGS: usize = 5;
const I_SEQUENCE_NUMBER: usize = 0;
const I_EXPIRES_AT_UNIX_MS: usize = 1;
const TAG_APPLY: u8 = 1;
const TAG_STALE: u8 = 2;

/// A stored state as the C ABI hands it over: its strings as C strings of the list (absent ones `None`), each
/// field by name.
pub(crate) struct StateView<'a> {
    pub command_id: &'a CStr,
    pub value: Option<&'a CStr>,
    pub value_type: Option<&'a CStr>,
    pub desired_id: Option<&'a CStr>,
    pub sequence_number: Option<i64>,
    pub expires_at: Option<&'a CStr>,
    pub expires_at_unix_ms: Option<i64>,
    pub action: DesiredAction,
}

/// Desired states, stored compactly (see the crate's README, "Bounded memory"): a state costs about its
/// JSON text. Read it with `get`, `iter`, or `to_vec` for owned states.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StateList {
    records: Records,
}

/// A stored state's action.
fn action_of(r: &Record<'_>) -> DesiredAction {
    if r.tag == TAG_STALE {
        DesiredAction::Stale
    } else {
        DesiredAction::Apply
    }
}

fn state_of(r: Record<'_>) -> DesiredStateRef<'_> {
    DesiredStateRef {
        command_id: r.str(S_COMMAND_ID).unwrap_or_default(),
        value: r.str(S_VALUE),
        value_type: r.str(S_VALUE_TYPE),
        desired_id: r.str(S_DESIRED_ID),
        sequence_number: r.ints[I_SEQUENCE_NUMBER],
        expires_at: r.str(S_EXPIRES_AT),
        expires_at_unix_ms: r.ints[I_EXPIRES_AT_UNIX_MS],
        action: action_of(&r),
    }
}

fn view(r: Record<'_>) -> StateView<'_> {
    StateView {
        command_id: r.strings[S_COMMAND_ID].unwrap_or(c""),
        value: r.strings[S_VALUE],
        value_type: r.strings[S_VALUE_TYPE],
        desired_id: r.strings[S_DESIRED_ID],
        sequence_number: r.ints[I_SEQUENCE_NUMBER],
        expires_at: r.strings[S_EXPIRES_AT],
        expires_at_unix_ms: r.ints[I_EXPIRES_AT_UNIX_MS],
        action: action_of(&r),
    }
}

impl StateList {
    pub(crate) fn with_capacity(items: usize, answer_bytes: usize) -> StateList {
        StateList { records: Records::with_capacity(items, answer_bytes) }
    }
    /// The number of states.
    pub fn len(&self) -> usize {
        self.records.len()
    }
    /// Whether the list has no state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The state at `index`, borrowed from the list; `None` past the end.
    pub fn get(&self, index: usize) -> Option<DesiredStateRef<'_>> {
        self.records.get(index).map(state_of)
    }
    /// Every state in order, borrowed from the list.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = DesiredStateRef<'_>> + '_ {
        // Every index below len() is an item; the fallback is never used.
        const NONE: DesiredStateRef<'static> = DesiredStateRef {
            command_id: "",
            value: None,
            value_type: None,
            desired_id: None,
            sequence_number: None,
            expires_at: None,
            expires_at_unix_ms: None,
            action: DesiredAction::Apply,
        };
        (0..self.len()).map(move |i| self.get(i).unwrap_or(NONE))
    }
    /// Every state, owned.
    pub fn to_vec(&self) -> Vec<DesiredState> {
        self.iter().map(|s| s.to_owned()).collect()
    }
    /// State `index` as C strings, each field by name (for the C ABI).
    pub(crate) fn view(&self, index: usize) -> Option<StateView<'_>> {
        self.records.get(index).map(view)
    }
    pub(crate) fn push(&mut self, s: &DesiredStateRef<'_>) {
        let tag = if s.action == DesiredAction::Stale { TAG_STALE } else { TAG_APPLY };
        let mut strings = [None; STRINGS];
        strings[S_COMMAND_ID] = Some(s.command_id);
        strings[S_VALUE] = s.value;
        strings[S_VALUE_TYPE] = s.value_type;
        strings[S_DESIRED_ID] = s.desired_id;
        strings[S_EXPIRES_AT] = s.expires_at;
        let mut ints = [None; MAX_INTS];
        ints[I_SEQUENCE_NUMBER] = s.sequence_number;
        ints[I_EXPIRES_AT_UNIX_MS] = s.expires_at_unix_ms;
        self.records.push(tag, ints, &strings);
    }
    pub(crate) fn shrink(&mut self) {
        self.records.shrink();
    }
    fn set_action(&mut self, index: usize, action: DesiredAction) {
        self.records.set_tag(index, if action == DesiredAction::Stale { TAG_STALE } else { TAG_APPLY });
    }
}

impl std::fmt::Debug for StateList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a StateList {
    type Item = DesiredStateRef<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = DesiredStateRef<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// How long a client sends batches one item at a time after the batch endpoint refused one (then it tries a
/// batch again).
pub(crate) const REPROBE_AFTER: Duration = Duration::from_secs(3600);

/// The scope that gives access to `/desired-states` (contract sections 2 and 3b).
pub(crate) const DESIRED_STATE_SCOPE: &str = "iot:desired-state:read";

impl Fallback {
    /// Whether the finding is a 403 under a token whose granted scope is known and lacks
    /// `iot:desired-state:read`: on a newer service, desired states are then never delivered.
    pub(crate) fn scope_lacks_desired_states(&self) -> bool {
        self.http_status == 403
            && self.scope.as_deref().is_some_and(|s| !s.split_whitespace().any(|x| x == DESIRED_STATE_SCOPE))
    }
}

/// Which commands a catalog holds, as one number: the same set of command ids (in any order) gives the same
/// number. A change says the device's catalog, or the service, changed.
pub(crate) fn catalog_fingerprint(states: &StateList) -> u64 {
    // FNV-1a of each id, summed: order-independent, and stable across builds (it is kept in the outbox file).
    states.iter().fold(states.len() as u64, |sum, s| {
        let h = s
            .command_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        sum.wrapping_add(h)
    })
}

#[derive(Deserialize)]
struct StateItem<'a> {
    #[serde(borrow, default)]
    desired_id: Text<'a>,
    #[serde(borrow, default)]
    command_id: Text<'a>,
    #[serde(borrow, default)]
    value: Text<'a>,
    #[serde(default)]
    sequence_number: Int,
    #[serde(borrow, default)]
    expires_at: Text<'a>,
    #[serde(borrow, default)]
    expires_in: Text<'a>,
}

/// Reads a `/desired-states` answer (contract section 3b, read tolerantly: ids as numbers or strings,
/// `expires_in` seconds instead of `expires_at`, fields or `code` missing, unknown fields). States without a
/// `desired_id` or a `command_id` cannot be answered: skipped with a warning. An answer that is not an object
/// with the list, or whose states are all skipped, is a protocol error saying what it is (an empty list only
/// when the answer says so). Every state comes back `Apply`; [`decide`] sets the actions.
pub(crate) fn parse_desired_states(
    body: &[u8],
    now_unix_ms: i64,
    warn: &mut dyn FnMut(Level, String),
) -> Result<StateList> {
    let refuse = json::BareArray::Refuse;
    let mut out = StateList::with_capacity(json::count_items(body, "desired_states", None, refuse), body.len());
    let mut skipped = json::Skipped::default();
    let found = json::for_each_item(body, "desired_states", None, refuse, &mut |raw| {
        let item = match json::object::<StateItem<'_>>(raw) {
            Ok(item) => item,
            Err(e) => {
                skipped.add(|| format!("unreadable ({e}): {}", json::excerpt(raw.get(), 200)));
                return;
            }
        };
        let (Some(desired_id), Some(command_id)) = (item.desired_id.0, item.command_id.0) else {
            skipped.add(|| format!("no desired_id or command_id: {}", json::excerpt(raw.get(), 200)));
            return;
        };
        let (expires_at, expires_at_unix_ms) = match (item.expires_at.0, item.expires_in.as_str()) {
            (Some(at), _) => {
                let ms = time::parse_rfc3339_any_ms(&at).ok();
                (Some(at), ms)
            }
            (None, Some(secs)) => match secs.parse::<f64>() {
                Ok(s) if s.is_finite() => {
                    let ms = now_unix_ms.saturating_add((s.clamp(-1e12, 1e12) * 1000.0) as i64);
                    (time::format_rfc3339_ms(ms).map(Cow::Owned), Some(ms))
                }
                // Present but unreadable: an expiry that cannot be shown to lie ahead (see `decide`).
                _ => (Some(Cow::Borrowed(secs)), None),
            },
            (None, None) => (None, None),
        };
        out.push(&DesiredStateRef {
            command_id: &command_id,
            value: item.value.as_str(),
            value_type: None,
            desired_id: Some(&desired_id),
            sequence_number: item.sequence_number.0.filter(|n| *n >= 0),
            expires_at: expires_at.as_deref(),
            expires_at_unix_ms,
            action: DesiredAction::Apply,
        });
    })
    .map_err(|e| Error::protocol(format!("the desired-states answer is not JSON: {e}")))?;
    crate::catalog::check_list("desired-states", "desired_states", &found, &skipped)?;
    skipped.report("desired states skipped (they cannot be answered)", warn);
    Ok(out)
}

/// The older service's wants: every representable command with a value (then kept only where the value is new:
/// [`keep_new_catalog_values`]).
pub(crate) fn from_catalog<'a>(c: &'a CommandRef<'_>) -> Option<DesiredStateRef<'a>> {
    if c.error.is_some() {
        return None;
    }
    Some(DesiredStateRef {
        command_id: &c.id,
        value: Some(c.value.as_deref()?),
        value_type: c.value_type.as_deref(),
        desired_id: None,
        sequence_number: None,
        expires_at: None,
        expires_at_unix_ms: None,
        action: DesiredAction::Apply,
    })
}

/// The catalog's values as desired states (an older service), built as the commands are read.
#[derive(Default)]
pub(crate) struct FromCatalog(pub StateList);

impl ItemSink<Command> for FromCatalog {
    fn reserve(&mut self, items: usize, answer_bytes: usize) {
        self.0 = StateList::with_capacity(items, answer_bytes);
    }
    fn push(&mut self, c: CommandRef<'_>) {
        if let Some(s) = from_catalog(&c) {
            self.0.push(&s);
        }
    }
    fn finish(&mut self) {
        self.0.shrink();
    }
}

/// The contract's decision (section 3b), for one answer of `/desired-states`: states already answered (or
/// queued to be) are dropped, not answered again; for each command only the highest `sequence_number` listed
/// is applied, and only when it is newer than the highest already answered for that command; every other
/// state of that command, and every expired one, is `Stale`. A state without `sequence_number` has no order:
/// it is applied unless expired. An expiry that cannot be read cannot be shown to lie ahead: stale. Works in
/// place: what it adds is 4 bytes a state (the states with a sequence number, sorted by command).
pub(crate) fn decide(states: &mut StateList, seen: &DesiredMemory, now_unix_ms: i64) -> Result<()> {
    let mut failed = None;
    states.records.retain(|r| match seen.answered(r.str(S_DESIRED_ID).unwrap_or_default()) {
        Ok(answered) => !answered,
        Err(e) => {
            failed.get_or_insert(e);
            true
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let n = states.len();
    // An index's top bit marks it superseded (an answer of at most 8 MiB holds far fewer than 2^31 states).
    const SUPERSEDED: u32 = 1 << 31;
    let mut ordered: Vec<u32> = Vec::with_capacity(n);
    for i in 0..n {
        let Some(s) = states.get(i) else { continue };
        let expired = match (s.expires_at_unix_ms, s.expires_at) {
            (Some(at), _) => now_unix_ms >= at,
            (None, Some(_)) => true,
            (None, None) => false,
        };
        let ordered_by_sequence = s.sequence_number.is_some();
        states.set_action(i, if expired { DesiredAction::Stale } else { DesiredAction::Apply });
        if ordered_by_sequence {
            ordered.push(i as u32);
        }
    }
    // By command, then sequence, then position: the last of a command's run is the one to apply (the last
    // listed with the highest sequence); every other one of the run is superseded.
    let key = |i: &u32| states.get(*i as usize).map(|s| (s.command_id, s.sequence_number));
    ordered.sort_unstable_by(|a, b| key(a).cmp(&key(b)).then(a.cmp(b)));
    let mut run_start = 0;
    while run_start < ordered.len() {
        let command = key(&ordered[run_start]).map(|k| k.0).unwrap_or_default();
        let mut run_end = run_start + 1;
        while run_end < ordered.len() && key(&ordered[run_end]).map(|k| k.0) == Some(command) {
            run_end += 1;
        }
        let latest = seen.latest(command)?;
        for (j, i) in ordered[run_start..run_end].iter_mut().enumerate() {
            let seq = key(i).and_then(|k| k.1).unwrap_or_default();
            if run_start + j + 1 != run_end || latest.is_some_and(|l| seq <= l) {
                *i |= SUPERSEDED;
            }
        }
        run_start = run_end;
    }
    for i in ordered {
        if i & SUPERSEDED != 0 {
            states.set_action((i & !SUPERSEDED) as usize, DesiredAction::Stale);
        }
    }
    Ok(())
}

impl DesiredState {
    /// The feed item answering this state with the physical `value` now at the actuator. With a
    /// `desired_id`: a command report carrying it, `status` (`Applied`, `Rejected` or `Stale`; `None` means
    /// `Applied`) and the `sequence_number` echoed. Without (a catalog value): a plain report of the physical
    /// value, whatever `status` says (`Applied`, `Rejected` and `None` are accepted; the physical value tells
    /// Realer the outcome).
    pub fn answer(&self, value: &str, status: ReportStatus) -> Result<crate::feed::FeedItem> {
        answer_item(&self.command_id, self.desired_id.as_deref(), self.sequence_number, value, status)
            .map(ItemRef::to_owned)
    }
}

/// [`DesiredState::answer`] on borrowed strings (the C ABI's, whose item points at the caller's strings).
pub(crate) fn answer_item<'a>(
    command_id: &'a str,
    desired_id: Option<&'a str>,
    sequence_number: Option<i64>,
    value: &'a str,
    status: ReportStatus,
) -> Result<ItemRef<'a>> {
    let bad = |why: &str| Err(Error::invalid(format!("report_status: {why}")));
    let item = ItemRef {
        sensor_id: None,
        command_id: Some(command_id),
        value: Some(value),
        value_received_at: None,
        message_id: None,
        desired_id: None,
        report_status: ReportStatus::None,
        sequence_number: None,
    };
    match desired_id {
        Some(d) => {
            let status = match status {
                ReportStatus::None | ReportStatus::Applied => ReportStatus::Applied,
                ReportStatus::Rejected | ReportStatus::Stale => status,
                ReportStatus::Reported => return bad("a desired state is answered applied, rejected or stale"),
            };
            Ok(ItemRef { desired_id: Some(d), report_status: status, sequence_number, ..item })
        }
        None => match status {
            ReportStatus::None | ReportStatus::Applied | ReportStatus::Rejected => Ok(item),
            _ => bad("a catalog value is never stale: report the physical value (applied or rejected)"),
        },
    }
}

/// Whether a catalog value is the one last seen for its command (contract section 3: by `value_type`,
/// numerically for NumericRange and Binary); a changed `value_type` is a new value.
fn same_catalog_value(seen: (Option<&str>, &str), value_type: Option<&str>, value: &str) -> bool {
    let same_type = match (seen.0, value_type) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (a, b) => a == b,
    };
    same_type && crate::catalog::values_equal(value_type, seen.1, value)
}

/// A catalog value handed over to the caller: command id, value type, value.
pub(crate) type CatalogValue = (String, Option<String>, String);

/// Keeps in `states` (catalog values, read from an older service) only the values that are new for their
/// command (contract section 3): seen for the first time, or different from the last value acted on. Returns
/// them, to be marked acted on ([`catalog_values_acted_on`]) once the device has acted: when it reports that
/// command, or at its next fetch (which shows the pass that applied them is over). So a value already acted on
/// is never handed over again, and a local physical change is not undone by the next poll, nor (with the outbox
/// file) by a restart; a process killed between the fetch and the apply gets the value again. Reads only.
pub(crate) fn keep_new_catalog_values(states: &mut StateList, memory: &DesiredMemory) -> Result<Vec<CatalogValue>> {
    memory.seen_values(|seen| {
        let mut failed = None;
        let mut handed = Vec::new();
        states.records.retain(|r| {
            if failed.is_some() {
                return true;
            }
            let id = r.str(S_COMMAND_ID).unwrap_or_default();
            let (value_type, value) = (r.str(S_VALUE_TYPE), r.str(S_VALUE));
            let new = match (seen.get(id), value) {
                (Ok(Some((t, v))), Some(value)) => !same_catalog_value((t.as_deref(), &v), value_type, value),
                (Ok(_), _) => true,
                (Err(e), _) => {
                    failed = Some(e);
                    return true;
                }
            };
            if new {
                handed.push((id.to_string(), value_type.map(str::to_string), value.unwrap_or_default().to_string()));
            }
            new
        });
        failed.map_or(Ok(handed), Err)
    })
}

/// Makes `values` the last catalog values acted on for their commands, in one write.
pub(crate) fn catalog_values_acted_on(values: &[CatalogValue], memory: &DesiredMemory) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    memory.seen_values(|seen| values.iter().try_for_each(|(id, t, v)| seen.set(id, t.as_deref(), v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn parse(body: &str) -> StateList {
        parse_desired_states(body.as_bytes(), NOW, &mut |_, m| panic!("unexpected warning {m}")).unwrap()
    }

    fn actions(states: &StateList) -> Vec<(String, DesiredAction)> {
        states.iter().map(|s| (s.desired_id.unwrap().to_string(), s.action)).collect()
    }

    #[test]
    fn reads_the_contract_shape_and_its_alternatives() {
        let s = parse(
            r#"{"code":2000,"desired_states":[
                {"desired_id":"des_a","command_id":1,"value":"1.0","sequence_number":3,"expires_at":"2027-01-15T08:00:00Z"},
                {"desired_id":"des_b","command_id":"cmd_x","value":2,"sequence_number":"4","expires_in":60,"extra":[1]},
                {"desired_id":"des_c","command_id":1}
            ]}"#,
        )
        .to_vec();
        assert_eq!(s[0].command_id, "1");
        assert_eq!(s[0].expires_at_unix_ms, Some(time::parse_rfc3339_any_ms("2027-01-15T08:00:00Z").unwrap()));
        assert_eq!(
            (s[1].command_id.as_str(), s[1].value.as_deref(), s[1].sequence_number),
            ("cmd_x", Some("2"), Some(4))
        );
        assert_eq!(s[1].expires_at_unix_ms, Some(NOW + 60_000));
        assert_eq!((s[2].value.as_deref(), s[2].sequence_number, s[2].expires_at.as_deref()), (None, None, None));
        // No code; states that cannot be answered are skipped.
        let mut warned = 0;
        let s = parse_desired_states(
            br#"{"desired_states":[{"desired_id":"d","command_id":1},{"command_id":2},{"desired_id":"e"}]}"#,
            NOW,
            &mut |_, _| warned += 1,
        )
        .unwrap();
        assert_eq!((s.len(), warned), (1, 1), "one warning for both");
        // Answers that are not the documented shape say what they are; an empty list is said so.
        let err = |body: &str| parse_desired_states(body.as_bytes(), NOW, &mut |_, _| ()).unwrap_err().message;
        assert_eq!(err(r#"{"code":2000}"#), "the desired-states answer has no \"desired_states\" array");
        assert_eq!(
            err(r#"[{"desired_id":"d","command_id":1}]"#),
            "the desired-states answer is an array, not a JSON object with a \"desired_states\" array"
        );
        assert!(err(r#"{"desired_states":[{"command_id":2},7]}"#)
            .starts_with("the desired-states answer lists 2 item(s), none of them usable; the first: no desired_id"));
        assert!(parse(r#"{"desired_states":[]}"#).is_empty());
    }

    #[test]
    fn decides_apply_and_stale_as_the_contract_says() {
        let log = DesiredMemory::in_memory();
        let mut s = parse(&format!(
            r#"{{"desired_states":[
                {{"desired_id":"low","command_id":1,"value":"1","sequence_number":2}},
                {{"desired_id":"high","command_id":1,"value":"2","sequence_number":5}},
                {{"desired_id":"expired","command_id":2,"value":"1","sequence_number":9,"expires_at":"{}"}},
                {{"desired_id":"bad_expiry","command_id":3,"value":"1","expires_at":"next tuesday"}},
                {{"desired_id":"unordered","command_id":4,"value":"1"}},
                {{"desired_id":"old","command_id":5,"value":"1","sequence_number":7}}
            ]}}"#,
            time::format_rfc3339_ms(NOW).unwrap()
        ));
        log.record("5", Some("earlier"), Some(7)).unwrap();
        decide(&mut s, &log, NOW).unwrap();
        use DesiredAction::*;
        let want: Vec<(String, DesiredAction)> = [
            ("low", Stale),
            ("high", Apply),
            ("expired", Stale),
            ("bad_expiry", Stale),
            ("unordered", Apply),
            ("old", Stale),
        ]
        .iter()
        .map(|(d, a)| (d.to_string(), *a))
        .collect();
        assert_eq!(actions(&s), want);

        // Answered (or queued) states are not offered again; a higher sequence later is applied.
        log.record("1", Some("high"), Some(5)).unwrap();
        log.record("1", Some("low"), Some(2)).unwrap();
        let mut s = parse(
            r#"{"desired_states":[{"desired_id":"high","command_id":1,"value":"2","sequence_number":5},
                                  {"desired_id":"newer","command_id":1,"value":"3","sequence_number":6},
                                  {"desired_id":"same","command_id":1,"value":"3","sequence_number":5}]}"#,
        );
        decide(&mut s, &log, NOW).unwrap();
        assert_eq!(actions(&s), [("newer".to_string(), Apply), ("same".to_string(), Stale)]);
    }

    #[test]
    fn answers_build_the_right_item() {
        let with = answer_item("1", Some("des_a"), Some(3), "1.0", ReportStatus::None).unwrap();
        assert_eq!(
            (with.desired_id, with.report_status, with.sequence_number),
            (Some("des_a"), ReportStatus::Applied, Some(3))
        );
        let stale = answer_item("1", Some("des_a"), Some(3), "0.0", ReportStatus::Stale).unwrap();
        assert_eq!(stale.report_status, ReportStatus::Stale);
        assert!(answer_item("1", Some("des_a"), None, "0", ReportStatus::Reported).is_err());
        let plain = answer_item("1", None, None, "1.0", ReportStatus::Applied).unwrap();
        assert_eq!((plain.desired_id, plain.report_status, plain.sequence_number), (None, ReportStatus::None, None));
        assert!(answer_item("1", None, None, "1.0", ReportStatus::Stale).is_err());
        plain.prepare(NOW).unwrap();
        with.prepare(NOW).unwrap();
    }

    fn catalog(values: &[(&str, &str, &str)]) -> StateList {
        let mut list = StateList::with_capacity(values.len(), 256);
        for (id, value_type, value) in values {
            let c = CommandRef {
                id: (*id).into(),
                value: Some((*value).into()),
                value_type: Some((*value_type).into()),
                ..CommandRef::default()
            };
            list.push(&from_catalog(&c).unwrap());
        }
        list
    }

    /// The values handed over, then acted on (as a device that applies and reports them).
    fn new_values(log: &DesiredMemory, values: &[(&str, &str, &str)]) -> Vec<(String, String)> {
        let mut list = catalog(values);
        let handed = keep_new_catalog_values(&mut list, log).unwrap();
        catalog_values_acted_on(&handed, log).unwrap();
        list.iter().map(|s| (s.command_id.to_string(), s.value.unwrap().to_string())).collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn a_catalog_value_is_handed_over_only_when_new() {
        let dir = std::env::temp_dir().join(format!("realer-catalog-seen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("outbox.db");
        let path = path.to_str().unwrap();
        for log in [DesiredMemory::in_memory(), DesiredMemory::open_file(path).unwrap()] {
            let first = [("1", "NumericRange", "1.0"), ("2", "Enum", "open"), ("3", "Binary", "0")];
            assert_eq!(new_values(&log, &first), pairs(&[("1", "1.0"), ("2", "open"), ("3", "0")]), "first seen");
            assert!(new_values(&log, &first).is_empty(), "already acted on: never again");
            // Compared by value_type: numerically for NumericRange and Binary, as text otherwise.
            let same = [("1", "NumericRange", "1"), ("2", "Enum", "open"), ("3", "binary", "0.0")];
            assert!(new_values(&log, &same).is_empty());
            let changed = [("1", "NumericRange", "2.5"), ("2", "Enum", "Open"), ("3", "Binary", "0")];
            assert_eq!(new_values(&log, &changed), pairs(&[("1", "2.5"), ("2", "Open")]));
            assert!(new_values(&log, &changed).is_empty());
            // A changed value_type is a new value; a new command is first seen.
            let retyped = [("3", "Enum", "0"), ("4", "Enum", "x")];
            assert_eq!(new_values(&log, &retyped), pairs(&[("3", "0"), ("4", "x")]));
        }
        // The file remembers across a reopen (a restart).
        let log = DesiredMemory::open_file(path).unwrap();
        assert!(new_values(&log, &[("1", "NumericRange", "2.50"), ("4", "Enum", "x")]).is_empty());
        assert_eq!(new_values(&log, &[("1", "NumericRange", "1.0")]), pairs(&[("1", "1.0")]));
        // A value handed over but not acted on (the process died before applying it) is handed over again.
        let mut list = catalog(&[("2", "Enum", "closed")]);
        assert_eq!(keep_new_catalog_values(&mut list, &log).unwrap().len(), 1);
        let mut list = catalog(&[("2", "Enum", "closed")]);
        assert_eq!(keep_new_catalog_values(&mut list, &log).unwrap().len(), 1, "not acted on: handed over again");
        drop(log);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_fallback_and_the_catalog_fingerprint() {
        let a = catalog(&[("1", "t", "0"), ("2", "t", "0")]);
        let b = catalog(&[("2", "t", "1"), ("1", "t", "5")]);
        let c = catalog(&[("1", "t", "0"), ("3", "t", "0")]);
        assert_eq!(catalog_fingerprint(&a), catalog_fingerprint(&b), "the same commands, in any order, any values");
        assert_ne!(catalog_fingerprint(&a), catalog_fingerprint(&c));
        assert_ne!(catalog_fingerprint(&a), catalog_fingerprint(&catalog(&[("1", "t", "0")])));
        let f = |status, scope: Option<&str>| Fallback {
            http_status: status,
            scope: scope.map(str::to_string),
            catalog: None,
        };
        assert!(f(403, Some("iot:catalog:read iot:feed-data:write")).scope_lacks_desired_states());
        assert!(!f(403, Some("iot:catalog:read iot:desired-state:read")).scope_lacks_desired_states());
        assert!(!f(403, None).scope_lacks_desired_states(), "a scope not said is not known to lack it");
        assert!(!f(404, Some("iot:catalog:read")).scope_lacks_desired_states());
    }
}
