//! The flat classifier of one address family (all its rules in one
//! per-dimension interval decomposition with aggregated, compressed bit
//! vectors of rule indices), and the building blocks the split classifier
//! (`split.rs`) shares: intervals, Eytzinger trees, row sinks, DSCP tables.
//!
//! Each of the six dimensions (source address, destination address,
//! protocol, source port, destination port, DSCP) maps a packet value to
//! rows of a bit matrix (bit `r` set: rule `r` accepts the value). A rule
//! matches iff its bit is set in every dimension, so the winning rule is the
//! lowest bit set in the AND over dimensions (Lakshman and Stiliadis, "bit
//! vector" classification). For the four range dimensions a value has two
//! rows: a *specific* row (rules that restrict the dimension and contain the
//! value) and the dimension's *wildcard* row (rules that do not restrict
//! it); keeping wildcards out of the specific rows is what bounds memory (a
//! `0.0.0.0/0` source would otherwise set a bit in every source interval).
//! Protocol and DSCP have few distinct rows, so each value's row already
//! includes the wildcard rules.
//!
//! Rows are stored compressed: an aggregate bit per 64-rule word says which
//! words are non-zero (the "aggregated bit vector" idea), and only those
//! words are kept; identical rows share their words. A lookup ANDs the
//! aggregates first, so a packet that matches nothing, or whose first match
//! is far down the list, costs a few aggregate words instead of `rules / 64`
//! words per dimension.
//!
//! What a lookup costs, and why it is laid out this way (measured with
//! `cargo bench --bench spd` and cachegrind): with packets to ever new
//! addresses, mispredicted branches, bit counting and dependent cache misses
//! dominated, not the number of rules. So:
//! - no branch depends on packet data where it can be avoided: the address
//!   searches descend Eytzinger-ordered trees with `k = 2k + (key <= v)` (a
//!   sorted-array binary search compiled to a branch a step), ports go
//!   through a two-level direct table, and words that a row does not store
//!   are read from a zero word instead of being skipped;
//! - a candidate word is checked against the two address rows first: most
//!   candidates fail there (cachegrind: 40 % fewer instructions per lookup
//!   than reading all ten words);
//! - the address descent prefetches the line of descendants a few levels
//!   ahead, so the misses of the deep levels overlap instead of following
//!   one another;
//! - rule actions sit in a compact array, not in the rule list;
//! - the caller may run the lookup with the POPCNT instruction
//!   (`super::Spd::classify`).

use std::collections::HashMap;

use super::rule::RuleSelector;

/// Cap on stored bit-vector words (128 MiB): compile fails beyond it.
pub(super) const MAX_WORDS: usize = 1 << 24;

/// An ordered point type of one dimension.
pub(super) trait Point: Copy + Ord {
    const MIN: Self;
    const MAX: Self;
    /// Levels ahead that a tree descent prefetches: the `2^n` descendants
    /// of a node `n` levels down are adjacent, and fill one 64-byte line.
    const PREFETCH: u32;
    /// Bits in the type.
    const BITS: u32;
    fn succ(self) -> Option<Self>;
    /// The value, widened.
    fn wide(self) -> u128;
    /// The low bits of `x`.
    fn from_wide(x: u128) -> Self;
}

macro_rules! point {
    ($($t:ty => $p:literal),*) => {$(
        impl Point for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            const PREFETCH: u32 = $p;
            const BITS: u32 = <$t>::BITS;
            #[inline]
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            #[inline]
            fn wide(self) -> u128 {
                self as u128
            }
            #[inline]
            fn from_wide(x: u128) -> Self {
                x as $t
            }
        }
    )*};
}
point!(u16 => 5, u32 => 4, u128 => 2);

/// The rows, deduplicated. A row is known by its *head*: for each
/// aggregate `a`, `[agg_a, base_a]`, where `agg_a` has bit `b` set iff word
/// `64 a + b` of the row is non-zero and `base_a` is the index in `data` of
/// the first stored word of aggregate `a`. Row `id`'s head is at
/// `heads[id * stride..]`; row 0 is the empty row.
pub(super) struct Rows {
    aggs: usize,
    heads: Vec<u64>,
    /// Ends with one zero word (see [`Rows::find`]).
    data: Vec<u64>,
}

/// Where interval and table builders put their rows: takes an
/// uncompressed row of `words()` words and gives back its id.
pub(super) trait RowSink {
    /// Words per uncompressed row.
    fn words(&self) -> usize;
    /// Stores `row` and returns its id.
    fn push(&mut self, row: &[u64]) -> Result<u32, &'static str>;
}

/// Builds [`Rows`], deduplicating identical rows.
pub(super) struct RowsBuilder {
    words: usize,
    rows: Rows,
    seen: HashMap<Vec<u64>, u32>,
}

impl RowsBuilder {
    /// A builder for rows of `nrules` bits.
    pub(super) fn new(nrules: usize) -> Self {
        let words = nrules.div_ceil(64).max(1);
        let aggs = words.div_ceil(64);
        let mut b = RowsBuilder {
            words,
            rows: Rows { aggs, heads: Vec::new(), data: Vec::new() },
            seen: HashMap::new(),
        };
        // Row 0: empty. Cannot fail on an empty row.
        let _ = b.push(&vec![0; words]);
        b
    }

    /// The finished rows.
    fn finish(mut self) -> Rows {
        self.rows.data.push(0);
        self.rows
    }
}

impl RowSink for RowsBuilder {
    fn words(&self) -> usize {
        self.words
    }

    fn push(&mut self, row: &[u64]) -> Result<u32, &'static str> {
        let aggs = self.rows.aggs;
        let mut key = vec![0u64; aggs];
        for (i, w) in row.iter().enumerate() {
            if *w != 0
                && let Some(a) = key.get_mut(i / 64)
            {
                *a |= 1 << (i % 64);
            }
        }
        key.extend(row.iter().copied().filter(|w| *w != 0));
        if let Some(id) = self.seen.get(&key) {
            return Ok(*id);
        }
        let id = u32::try_from(self.rows.heads.len() / (2 * aggs)).map_err(|_| "too many rows")?;
        if self.rows.data.len() + key.len() + self.rows.heads.len() > MAX_WORDS {
            return Err("bit-vector tables over 128 MiB");
        }
        let mut base = self.rows.data.len() as u64;
        for agg in key.iter().take(aggs) {
            self.rows.heads.push(*agg);
            self.rows.heads.push(base);
            base += u64::from(agg.count_ones());
        }
        self.rows.data.extend(key.iter().skip(aggs));
        self.seen.insert(key, id);
        Ok(id)
    }
}

/// The rows a lookup ANDs, as offsets of their heads in [`Rows::heads`]:
/// four (specific, wildcard) pairs for the range dimensions, then the
/// protocol's and the DSCP's rows.
pub(super) type Heads = [usize; 10];

/// One head's aggregate word and base for the current aggregate.
#[derive(Clone, Copy)]
struct Agg {
    bits: u64,
    base: usize,
}

impl Rows {
    /// Calls `f` with each rule index set in the AND of the dimensions'
    /// rows (`heads`, see [`Heads`]), in increasing order, until `f`
    /// returns true; returns that index.
    #[inline]
    pub(super) fn find(&self, heads: &Heads, mut f: impl FnMut(u32) -> bool) -> Option<u32> {
        let zero = self.data.len().wrapping_sub(1);
        for a in 0..self.aggs {
            let hs: [Agg; 10] = heads.map(|h| Agg {
                bits: self.heads.get(h + 2 * a).copied().unwrap_or(0),
                base: self.heads.get(h + 2 * a + 1).copied().unwrap_or(0) as usize,
            });
            let or = |i: usize| hs[2 * i].bits | hs[2 * i + 1].bits;
            let mut m = or(0) & or(1) & or(2) & or(3) & hs[8].bits & hs[9].bits;
            while m != 0 {
                let bit = m.trailing_zeros();
                let below = (1u64 << bit) - 1;
                // Branch-free: a word a row does not store is read from the
                // zero word at the end of `data` (always cached) instead of
                // being skipped, which would mispredict every other packet.
                let w = |h: Agg| {
                    let stored = 0usize.wrapping_sub((h.bits >> bit & 1) as usize);
                    let i = ((h.base + (h.bits & below).count_ones() as usize) & stored) | (zero & !stored);
                    self.data.get(i).copied().unwrap_or(0)
                };
                let ow = |i: usize| w(hs[2 * i]) | w(hs[2 * i + 1]);
                // Addresses first: most candidate words fail there, and the
                // other six words are then not worth reading.
                let addr = ow(0) & ow(1);
                if addr == 0 {
                    m &= m - 1;
                    continue;
                }
                let mut word = addr & ow(2) & ow(3) & w(hs[8]) & w(hs[9]);
                while word != 0 {
                    let idx = ((a as u32 * 64 + bit) * 64) + word.trailing_zeros();
                    if f(idx) {
                        return Some(idx);
                    }
                    word &= word - 1;
                }
                m &= m - 1;
            }
        }
        None
    }

    /// Offset of row `id`'s head in `heads`.
    #[inline]
    fn head(&self, id: u32) -> usize {
        id as usize * 2 * self.aggs
    }
}

/// The elementary intervals of one range dimension: sorted starts (the
/// first is `MIN`) and each interval's row, from each rule's range; a range
/// of `MIN..=MAX` is a wildcard and goes to the wildcard row instead.
struct Intervals<K> {
    bounds: Vec<K>,
    rows: Vec<u32>,
    wild: u32,
}

impl<K: Point> Intervals<K> {
    fn build(ranges: &[(K, K)], b: &mut impl RowSink) -> Result<Self, &'static str> {
        let mut cur = vec![0u64; b.words()];
        let mut wild_row = cur.clone();
        let mut starts: Vec<(K, usize)> = Vec::new();
        let mut ends: Vec<(K, usize)> = Vec::new();
        for (r, &(lo, hi)) in ranges.iter().enumerate() {
            if lo == K::MIN && hi == K::MAX {
                set(&mut wild_row, r, true);
                continue;
            }
            starts.push((lo, r));
            if let Some(e) = hi.succ() {
                ends.push((e, r));
            }
        }
        starts.sort_unstable();
        ends.sort_unstable();
        let mut bounds: Vec<K> = Vec::with_capacity(starts.len() + ends.len() + 1);
        bounds.push(K::MIN);
        bounds.extend(starts.iter().map(|s| s.0));
        bounds.extend(ends.iter().map(|e| e.0));
        bounds.sort_unstable();
        bounds.dedup();
        let mut rows = Vec::with_capacity(bounds.len());
        let (mut si, mut ei) = (0, 0);
        for &p in &bounds {
            while let Some(&(_, r)) = ends.get(ei).filter(|e| e.0 == p) {
                set(&mut cur, r, false);
                ei += 1;
            }
            while let Some(&(_, r)) = starts.get(si).filter(|s| s.0 == p) {
                set(&mut cur, r, true);
                si += 1;
            }
            rows.push(b.push(&cur)?);
        }
        Ok(Intervals { bounds, rows, wild: b.push(&wild_row)? })
    }
}

/// An address dimension: the interval starts in Eytzinger order (the
/// implicit binary search tree stored level by level, node `k`'s children
/// at `2k` and `2k + 1`), and for each node the row of the interval that
/// ends just before its key.
///
/// A search descends a fixed number of levels with `k = 2k + (key <= v)`,
/// an add, not a branch; the top levels share a few cache lines that stay
/// hot, and the deep ones are prefetched. The node where the descent last
/// went left holds the first start above `v`; its row is the answer.
pub(super) struct Dim<K> {
    /// Nodes `1..2^depth`; past the real starts, `MAX` (a value `MAX` is
    /// answered without the tree). Node 0 (no start above `v`) and padding
    /// nodes carry the last interval's row.
    pub(super) tree: Vec<K>,
    /// Node `k`'s row.
    pub(super) node_rows: Vec<u32>,
    pub(super) depth: u32,
    pub(super) wild: u32,
}

impl<K: Point> Dim<K> {
    /// Builds the dimension from each rule's `(lo, hi)` range.
    pub(super) fn build(ranges: &[(K, K)], b: &mut impl RowSink) -> Result<Self, &'static str> {
        let iv = Intervals::build(ranges, b)?;
        // Starts 1.. go into the tree (start 0 is MIN, below every value).
        let keys = iv.bounds.get(1..).unwrap_or(&[]);
        let depth = usize::BITS - keys.len().leading_zeros(); // 2^depth - 1 >= keys
        let size = 1usize << depth;
        let last = iv.rows.last().copied().unwrap_or(0);
        let mut tree = vec![K::MAX; size];
        let mut node_rows = vec![last; size];
        // An in-order walk of the implicit tree visits nodes in sorted
        // order: the j-th node gets key j (the start of interval j + 1) and
        // the row of interval j, the one just below it.
        let mut j = 0usize;
        let mut stack = Vec::new();
        let mut k = 1usize;
        loop {
            while k < size {
                stack.push(k);
                k *= 2;
            }
            let Some(n) = stack.pop() else { break };
            if let (Some(&key), Some(&row), Some(t), Some(r)) =
                (keys.get(j), iv.rows.get(j), tree.get_mut(n), node_rows.get_mut(n))
            {
                *t = key;
                *r = row;
                j += 1;
            }
            k = 2 * n + 1;
        }
        Ok(Dim { tree, node_rows, depth, wild: iv.wild })
    }

    /// The specific row for value `v`.
    #[inline]
    fn row(&self, v: K) -> u32 {
        self.node_rows.get(descend(&self.tree, self.depth, v)).copied().unwrap_or(0)
    }

    fn bytes(&self) -> usize {
        self.tree.len() * size_of::<K>() + self.node_rows.len() * 4
    }
}

/// The node answering value `v` in an Eytzinger tree of `depth` levels
/// whose keys are `tree` (see [`Dim`]): its row is the value's row.
#[inline(always)]
pub(super) fn descend<K: Point>(tree: &[K], depth: u32, v: K) -> usize {
    if v == K::MAX {
        return 0;
    }
    let mut k = 1usize;
    for _ in 0..depth {
        // `k` is always a node; keeping the compare out of the
        // bounds check keeps it from becoming a branch.
        prefetch(tree, k << K::PREFETCH);
        let t = tree.get(k).copied().unwrap_or(K::MAX);
        k = 2 * k + usize::from(t <= v);
    }
    // Undo the final run of right turns and the left turn before it.
    k >> (k.trailing_ones() + 1)
}

/// Asks for the cache line of `a[i]` (ignored past the end).
#[inline(always)]
pub(super) fn prefetch<T>(a: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if i < a.len() {
        // SAFETY: prefetching has no memory-safety preconditions (it never
        // faults, whatever the address), and SSE is part of the x86_64
        // baseline; the address is in bounds anyway.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                a.as_ptr().wrapping_add(i).cast(),
            )
        };
    }
}

/// A port dimension as a two-level direct table: `top[port >> 8]` gives the
/// interval of the block's first port and a block of 256 offsets from it;
/// blocks that lie in one interval share the all-zero block. Two loads and
/// an add, whatever the port.
pub(super) struct Ports {
    top: Vec<(u32, u32)>,
    low: Vec<u16>,
    rows: Vec<u32>,
    wild: u32,
}

impl Ports {
    pub(super) fn build(ranges: &[(u16, u16)], b: &mut impl RowSink) -> Result<Self, &'static str> {
        let iv = Intervals::build(ranges, b)?;
        let interval = |p: u16| iv.bounds.partition_point(|s| *s <= p).saturating_sub(1);
        let mut top = Vec::with_capacity(256);
        let mut low = vec![0u16; 256];
        let mut blocks: HashMap<Vec<u16>, u32> = HashMap::new();
        blocks.insert(vec![0; 256], 0);
        for hi in 0..=255u16 {
            let base = interval(hi << 8);
            // At most 256 intervals start inside one block of 256 ports.
            let block: Vec<u16> = (0..=255u16).map(|lo| (interval(hi << 8 | lo) - base) as u16).collect();
            let next = blocks.len() as u32;
            let id = *blocks.entry(block.clone()).or_insert(next);
            if id == next {
                low.extend_from_slice(&block);
            }
            top.push((base as u32, id * 256));
        }
        Ok(Ports { top, low, rows: iv.rows, wild: iv.wild })
    }

    /// The specific row for port `p`.
    #[inline]
    fn row(&self, p: u16) -> u32 {
        let (base, block) = self.top.get(usize::from(p >> 8)).copied().unwrap_or((0, 0));
        let off = self.low.get(block as usize + usize::from(p & 0xff)).copied().unwrap_or(0);
        self.rows.get(base as usize + usize::from(off)).copied().unwrap_or(0)
    }

    fn bytes(&self) -> usize {
        self.top.len() * 8 + self.low.len() * 2 + self.rows.len() * 4
    }
}

/// A small dimension looked up by direct index (protocol, DSCP): each
/// value's row includes the wildcard rules.
pub(super) struct Table {
    pub(super) rows: Vec<u32>,
    /// The wildcard rules alone (for a packet whose protocol is unknown).
    wild: u32,
}

impl Table {
    /// `member(rule, value)` says whether a non-wildcard rule contains the
    /// value; `is_wild(rule)` whether the rule does not restrict the
    /// dimension.
    pub(super) fn build(
        size: usize,
        nrules: usize,
        is_wild: impl Fn(usize) -> bool,
        member: impl Fn(usize, usize) -> bool,
        b: &mut impl RowSink,
    ) -> Result<Self, &'static str> {
        let mut wild_row = vec![0u64; b.words()];
        for r in (0..nrules).filter(|r| is_wild(*r)) {
            set(&mut wild_row, r, true);
        }
        let mut rows = Vec::with_capacity(size);
        for v in 0..size {
            let mut row = wild_row.clone();
            for r in (0..nrules).filter(|r| !is_wild(*r) && member(*r, v)) {
                set(&mut row, r, true);
            }
            rows.push(b.push(&row)?);
        }
        Ok(Table { rows, wild: b.push(&wild_row)? })
    }

    /// The row for value `v`.
    #[inline]
    fn row(&self, v: usize) -> u32 {
        self.rows.get(v).copied().unwrap_or(0)
    }
}

pub(super) fn set(bits: &mut [u64], r: usize, on: bool) {
    if let Some(w) = bits.get_mut(r / 64) {
        if on {
            *w |= 1 << (r % 64);
        } else {
            *w &= !(1 << (r % 64));
        }
    }
}

/// The classifier of one family as one interval decomposition over all its
/// rules (the module docs); answers are the family's local rule indices.
pub(super) struct Flat<K> {
    src: Dim<K>,
    dst: Dim<K>,
    proto: Table,
    sport: Ports,
    dport: Ports,
    dscp: Table,
    rows: Rows,
}

/// A rule's source and destination ranges in one family, as `(lo, hi)`.
pub(super) type Addrs<K> = ((K, K), (K, K));

/// Packet fields of one family, already as integers.
#[derive(Clone, Copy)]
pub(super) struct Point6<K> {
    pub src: K,
    pub dst: K,
    /// `None` means "only rules that do not restrict the protocol".
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub dscp: u8,
}

impl<K: Point> Flat<K> {
    /// Compiles the rules `sels`, whose addresses in this family are
    /// `addrs` (source, destination).
    pub(super) fn build(sels: &[RuleSelector], addrs: &[Addrs<K>]) -> Result<Self, &'static str> {
        let n = sels.len();
        let mut b = RowsBuilder::new(n);
        let (srcs, dsts): (Vec<_>, Vec<_>) = addrs.iter().copied().unzip();
        let src = Dim::build(&srcs, &mut b)?;
        let dst = Dim::build(&dsts, &mut b)?;
        let sp: Vec<_> = sels.iter().map(|s| (s.src_ports.start, s.src_ports.end)).collect();
        let dp: Vec<_> = sels.iter().map(|s| (s.dst_ports.start, s.dst_ports.end)).collect();
        let sport = Ports::build(&sp, &mut b)?;
        let dport = Ports::build(&dp, &mut b)?;
        let proto_of = |r: usize| sels.get(r).and_then(|s| s.proto);
        let proto =
            Table::build(256, n, |r| proto_of(r).is_none(), |r, v| proto_of(r) == Some(v as u8), &mut b)?;
        let mask = |r: usize| sels.get(r).map_or(0, |s| s.dscp.0);
        let dscp = Table::build(64, n, |r| mask(r) == u64::MAX, |r, v| mask(r) >> v & 1 == 1, &mut b)?;
        Ok(Flat { src, dst, proto, sport, dport, dscp, rows: b.finish() })
    }

    #[inline]
    fn heads(&self, p: &Point6<K>) -> Heads {
        // Row 0 is the empty row: no specific rule for an opaque port.
        let ids = [
            self.dst.row(p.dst),
            self.dst.wild,
            self.src.row(p.src),
            self.src.wild,
            p.dport.map_or(0, |v| self.dport.row(v)),
            self.dport.wild,
            p.sport.map_or(0, |v| self.sport.row(v)),
            self.sport.wild,
            p.proto.map_or(self.proto.wild, |v| self.proto.row(usize::from(v))),
            self.dscp.row(usize::from(p.dscp & 63)),
        ];
        ids.map(|id| self.rows.head(id))
    }

    /// Calls `f` with the local index of every rule matching `p`, in
    /// order, until `f` returns true; returns that index.
    #[inline]
    pub(super) fn find(&self, p: &Point6<K>, f: impl FnMut(u32) -> bool) -> Option<u32> {
        self.rows.find(&self.heads(p), f)
    }

    /// Bytes used by the lookup tables.
    pub(super) fn bytes(&self) -> usize {
        (self.rows.data.len() + self.rows.heads.len()) * 8
            + self.src.bytes()
            + self.dst.bytes()
            + self.sport.bytes()
            + self.dport.bytes()
            + 4 * (256 + 64)
    }
}
