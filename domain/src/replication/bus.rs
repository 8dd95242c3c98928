//! What every event-bus destination does around its own call: take only entries that carry an
//! event, refuse for good an event the bus could never accept (too large alone), pack the rest into
//! calls within the bus's limits, and give every entry exactly one outcome. EventBridge and Event
//! Grid differ only in how they wrap an event and how they answer a call; this skeleton is shared so
//! the two buses cannot drift apart on what they refuse or forget.

use super::SealedEntry;
use super::relay::Delivery;

/// A bus's batch limits, and how it counts a batch's bytes: a frame, each item, a separator between
/// items (Event Grid's JSON array: frame 2, separator 1; EventBridge's entries: 0 and 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Items per batch.
    pub max_items: usize,
    /// Bytes per batch, frame and separators included.
    pub max_bytes: usize,
    /// Bytes a batch costs besides its items.
    pub frame: usize,
    /// Bytes between two items.
    pub separator: usize,
}

impl BatchLimits {
    /// Whether an item of `size` bytes fits in a batch of its own.
    pub fn fits(&self, size: usize) -> bool {
        self.frame + size <= self.max_bytes
    }

    /// Splits `(index, size)` items, in order, into consecutive batches within the limits (an item
    /// that does not fit alone gets a batch of its own: check [`BatchLimits::fits`] first).
    ///
    /// ```
    /// use paracell_domain::replication::bus::BatchLimits;
    /// let limits = BatchLimits { max_items: 2, max_bytes: 11, frame: 2, separator: 1 };
    /// let items = [(0, 4), (1, 4), (2, 4), (3, 9)];
    /// assert_eq!(limits.pack(&items), vec![vec![0, 1], vec![2], vec![3]]);
    /// ```
    pub fn pack(&self, items: &[(usize, usize)]) -> Vec<Vec<usize>> {
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        let mut bytes = self.frame;
        for &(index, size) in items {
            let added = size
                + if current.is_empty() {
                    0
                } else {
                    self.separator
                };
            if !current.is_empty()
                && (current.len() >= self.max_items || bytes + added > self.max_bytes)
            {
                batches.push(std::mem::take(&mut current));
                bytes = self.frame;
            }
            bytes += size
                + if current.is_empty() {
                    0
                } else {
                    self.separator
                };
            current.push(index);
        }
        if !current.is_empty() {
            batches.push(current);
        }
        batches
    }
}

/// Whether an event bus takes `entry`: only entries that carry a public event (a booking; a refused
/// debit has none). Every bus destination's `wants`.
pub fn carries_event(entry: &SealedEntry) -> bool {
    entry.event().is_some()
}

/// One relay batch on its way to a bus: each entry's outcome so far, and the items still to send.
///
/// ```
/// use paracell_domain::replication::bus::{BatchLimits, BusBatch};
/// use paracell_domain::replication::relay::Delivery;
/// let limits = BatchLimits { max_items: 10, max_bytes: 8, frame: 0, separator: 0 };
/// // Three items: two small, one that can never fit.
/// let mut batch = BusBatch::from_items(
///     vec![Ok("abc".to_owned()), Ok("0123456789".to_owned()), Err("no event".to_owned())],
///     |item: &String| item.len(),
///     limits,
///     |size| format!("{size} bytes, over the bus's limit"),
/// );
/// for call in batch.calls() {
///     batch.settle(&call, &vec![Delivery::Delivered; call.len()]);
/// }
/// assert_eq!(
///     batch.finish(),
///     vec![
///         Delivery::Delivered,
///         Delivery::Poison("10 bytes, over the bus's limit".into()),
///         Delivery::Poison("no event".into()),
///     ]
/// );
/// ```
#[derive(Debug)]
pub struct BusBatch<T> {
    limits: BatchLimits,
    outcomes: Vec<Option<Delivery>>,
    items: Vec<Option<T>>,
    sizes: Vec<(usize, usize)>,
}

impl<T> BusBatch<T> {
    /// Screens a relay batch for a bus: each entry's event (its bytes, as the bus will carry them),
    /// or why it cannot be sent; `too_large` words the refusal of an event over the limit.
    pub fn screen(
        entries: &[SealedEntry],
        wrap: impl Fn(&str) -> Result<T, String>,
        size: impl Fn(&T) -> usize,
        limits: BatchLimits,
        too_large: impl Fn(usize) -> String,
    ) -> Self {
        let items = entries
            .iter()
            .map(|entry| match entry.event() {
                None => Err("the entry carries no event".to_owned()),
                Some(event) => wrap(&event),
            })
            .collect();
        Self::from_items(items, size, limits, too_large)
    }

    /// The same, from items already wrapped (or refused).
    pub fn from_items(
        items: Vec<Result<T, String>>,
        size: impl Fn(&T) -> usize,
        limits: BatchLimits,
        too_large: impl Fn(usize) -> String,
    ) -> Self {
        let mut outcomes = Vec::with_capacity(items.len());
        let mut kept = Vec::with_capacity(items.len());
        let mut sizes = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Err(why) => {
                    outcomes.push(Some(Delivery::Poison(why)));
                    kept.push(None);
                }
                Ok(item) if !limits.fits(size(&item)) => {
                    outcomes.push(Some(Delivery::Poison(too_large(size(&item)))));
                    kept.push(None);
                }
                Ok(item) => {
                    sizes.push((i, size(&item)));
                    outcomes.push(None);
                    kept.push(Some(item));
                }
            }
        }
        Self {
            limits,
            outcomes,
            items: kept,
            sizes,
        }
    }

    /// The calls to make, in order: indexes of the items each one carries.
    pub fn calls(&self) -> Vec<Vec<usize>> {
        self.limits.pack(&self.sizes)
    }

    /// The items of a call, in order.
    pub fn items<'a>(&'a self, call: &'a [usize]) -> impl Iterator<Item = &'a T> + 'a {
        call.iter().filter_map(|i| self.items[*i].as_ref())
    }

    /// Records what the bus did with a call: one outcome per item, in order (an item left without
    /// one keeps none, and [`BusBatch::finish`] dead-letters it rather than dropping it).
    pub fn settle(&mut self, call: &[usize], outcomes: &[Delivery]) {
        for (i, outcome) in call.iter().zip(outcomes) {
            if let Some(slot) = self.outcomes.get_mut(*i) {
                *slot = Some(outcome.clone());
            }
        }
    }

    /// Records one outcome for every item of a call (a bus that answers a call as a whole).
    pub fn settle_all(&mut self, call: &[usize], outcome: &Delivery) {
        for i in call {
            if let Some(slot) = self.outcomes.get_mut(*i) {
                *slot = Some(outcome.clone());
            }
        }
    }

    /// One outcome per entry, in order; an entry no call settled is poison, never dropped.
    pub fn finish(self) -> Vec<Delivery> {
        self.outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Delivery::Poison("the bus gave no outcome".into())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_items: usize, max_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_items,
            max_bytes,
            frame: 0,
            separator: 0,
        }
    }

    #[test]
    fn an_item_no_call_settled_is_poison() {
        let batch = BusBatch::from_items(
            vec![Ok(1_usize), Ok(2)],
            |_| 1,
            limits(1, 10),
            |_| String::new(),
        );
        assert_eq!(batch.calls(), vec![vec![0], vec![1]]);
        let mut batch = batch;
        batch.settle(&[0], &[Delivery::Delivered]);
        assert_eq!(
            batch.finish(),
            vec![
                Delivery::Delivered,
                Delivery::Poison("the bus gave no outcome".into())
            ]
        );
    }

    #[test]
    fn refused_items_are_not_sent_and_keep_their_place() {
        let batch = BusBatch::from_items(
            vec![Err("bad".to_owned()), Ok(5_usize), Ok(50), Ok(4)],
            |n| *n,
            limits(10, 10),
            |n| format!("{n} > 10"),
        );
        assert_eq!(batch.calls(), vec![vec![1, 3]]);
        let call = batch.calls().remove(0);
        assert_eq!(batch.items(&call).copied().collect::<Vec<_>>(), vec![5, 4]);
        let mut batch = batch;
        batch.settle_all(&call, &Delivery::Retry("slow".into()));
        assert_eq!(
            batch.finish(),
            vec![
                Delivery::Poison("bad".into()),
                Delivery::Retry("slow".into()),
                Delivery::Poison("50 > 10".into()),
                Delivery::Retry("slow".into()),
            ]
        );
    }
}
