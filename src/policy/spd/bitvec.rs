//! The compiled classifier of one address family: a per-dimension interval
//! decomposition with aggregated, compressed bit vectors of rule indices.
//!
//! Each of the six dimensions (source address, destination address,
//! protocol, source port, destination port, DSCP) maps a packet value to two
//! rows of a bit matrix: a *specific* row (rules that restrict the dimension
//! and contain the value) and the dimension's *wildcard* row (rules that do
//! not restrict it). A rule matches iff its bit is set in `specific | wild`
//! of every dimension, so the winning rule is the lowest bit set in the AND
//! over dimensions (Lakshman and Stiliadis, "bit vector" classification).
//!
//! Rows are stored compressed: an aggregate bit per 64-rule word says which
//! words are non-zero (the "aggregated bit vector" idea), and only those
//! words are kept. A lookup ANDs the aggregates first, so a packet that
//! matches nothing, or whose first match is far down the list, costs a few
//! aggregate words instead of `rules / 64` words per dimension. Identical
//! rows are stored once. Keeping wildcards out of the specific rows is what
//! bounds memory: a `0.0.0.0/0` source would otherwise set a bit in every
//! source interval.

use std::collections::HashMap;

use super::rule::RuleSelector;

/// Cap on stored bit-vector words (128 MiB): compile fails beyond it.
const MAX_WORDS: usize = 1 << 24;

/// An ordered point type of one dimension.
pub(super) trait Point: Copy + Ord {
    const MIN: Self;
    const MAX: Self;
    fn succ(self) -> Option<Self>;
}

macro_rules! point {
    ($($t:ty),*) => {$(
        impl Point for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            #[inline]
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
        }
    )*};
}
point!(u16, u32, u128);

/// Deduplicated compressed rows. Row 0 is the empty row.
///
/// Layout per row in `head` (stride `2 * aggs`): `[agg_0, base_0, agg_1,
/// base_1, ...]` where `agg_a` has bit `b` set iff word `64 a + b` of the row
/// is non-zero, and `base_a` is the index in `data` of the first stored word
/// of aggregate `a`. With up to 4 aggregates (16,384 rules per family) the
/// head of a row fits one 64-byte cache line.
pub(super) struct Rows {
    aggs: usize,
    head: Vec<u64>,
    data: Vec<u64>,
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
            rows: Rows { aggs, head: Vec::new(), data: Vec::new() },
            seen: HashMap::new(),
        };
        // Row 0: empty. Cannot fail on an empty row.
        let _ = b.intern(&vec![0; words]);
        b
    }

    /// Words per uncompressed row.
    pub(super) fn words(&self) -> usize {
        self.words
    }

    /// Stores `row` (uncompressed, `words()` long) and returns its id.
    pub(super) fn intern(&mut self, row: &[u64]) -> Result<u32, &'static str> {
        let aggs = self.rows.aggs;
        let mut key = vec![0u64; aggs];
        for (i, w) in row.iter().enumerate() {
            if *w != 0 {
                if let Some(a) = key.get_mut(i / 64) {
                    *a |= 1 << (i % 64);
                }
            }
        }
        key.extend(row.iter().copied().filter(|w| *w != 0));
        if let Some(id) = self.seen.get(&key) {
            return Ok(*id);
        }
        let id = u32::try_from(self.rows.head.len() / (2 * aggs)).map_err(|_| "too many rows")?;
        if self.rows.data.len() + key.len() + self.rows.head.len() > MAX_WORDS {
            return Err("bit-vector tables over 128 MiB");
        }
        let mut base = self.rows.data.len() as u64;
        for agg in key.iter().take(aggs) {
            self.rows.head.push(*agg);
            self.rows.head.push(base);
            base += u64::from(agg.count_ones());
        }
        self.rows.data.extend(key.iter().skip(aggs));
        self.seen.insert(key, id);
        Ok(id)
    }

    /// The finished rows.
    pub(super) fn finish(self) -> Rows {
        self.rows
    }
}

impl Rows {
    /// Aggregate word `a` of `row`.
    #[inline]
    fn agg(&self, row: u32, a: usize) -> u64 {
        self.head.get(row as usize * 2 * self.aggs + 2 * a).copied().unwrap_or(0)
    }

    /// Word `64 a + bit` of `row`.
    #[inline]
    fn word(&self, row: u32, a: usize, bit: u32) -> u64 {
        let i = row as usize * 2 * self.aggs + 2 * a;
        let agg = self.head.get(i).copied().unwrap_or(0);
        if agg >> bit & 1 == 0 {
            return 0;
        }
        let base = self.head.get(i + 1).copied().unwrap_or(0) as usize;
        let rank = (agg & ((1u64 << bit) - 1)).count_ones() as usize;
        self.data.get(base + rank).copied().unwrap_or(0)
    }

    /// Calls `f` with each rule index set in every `specific | wild` pair, in
    /// increasing order, until `f` returns true; returns that index.
    #[inline]
    pub(super) fn find(&self, pairs: &[(u32, u32); 6], mut f: impl FnMut(u32) -> bool) -> Option<u32> {
        for a in 0..self.aggs {
            let mut m = u64::MAX;
            for &(s, w) in pairs {
                m &= self.agg(s, a) | self.agg(w, a);
            }
            while m != 0 {
                let bit = m.trailing_zeros();
                let mut word = u64::MAX;
                for &(s, w) in pairs {
                    word &= self.word(s, a, bit) | self.word(w, a, bit);
                }
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

    /// Bytes used by the tables.
    pub(super) fn bytes(&self) -> usize {
        (self.head.len() + self.data.len()) * 8
    }
}

/// One range dimension: sorted interval starts and each interval's row.
pub(super) struct Dim<K> {
    bounds: Vec<K>,
    rows: Vec<u32>,
    wild: u32,
}

impl<K: Point> Dim<K> {
    /// Builds the dimension from each rule's `Some((lo, hi))` range; a range
    /// of `MIN..=MAX` is a wildcard.
    pub(super) fn build(ranges: &[(K, K)], b: &mut RowsBuilder) -> Result<Self, &'static str> {
        let mut cur = vec![0u64; b.words()];
        let mut wild = cur.clone();
        let mut starts: Vec<(K, usize)> = Vec::new();
        let mut ends: Vec<(K, usize)> = Vec::new();
        for (r, &(lo, hi)) in ranges.iter().enumerate() {
            if lo == K::MIN && hi == K::MAX {
                set(&mut wild, r, true);
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
            rows.push(b.intern(&cur)?);
        }
        Ok(Dim { bounds, rows, wild: b.intern(&wild)? })
    }

    /// The (specific, wildcard) rows for value `v`.
    #[inline]
    pub(super) fn rows(&self, v: K) -> (u32, u32) {
        let i = self.bounds.partition_point(|b| *b <= v);
        (self.rows.get(i.wrapping_sub(1)).copied().unwrap_or(0), self.wild)
    }

    /// Only the wildcard row (for a packet whose value is opaque).
    #[inline]
    pub(super) fn wild_only(&self) -> (u32, u32) {
        (0, self.wild)
    }
}

/// A small dimension looked up by direct index (protocol, DSCP).
pub(super) struct Table {
    rows: Vec<u32>,
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
        b: &mut RowsBuilder,
    ) -> Result<Self, &'static str> {
        let mut wild = vec![0u64; b.words()];
        for r in (0..nrules).filter(|r| is_wild(*r)) {
            set(&mut wild, r, true);
        }
        let mut rows = Vec::with_capacity(size);
        for v in 0..size {
            let mut row = vec![0u64; b.words()];
            for r in (0..nrules).filter(|r| !is_wild(*r) && member(*r, v)) {
                set(&mut row, r, true);
            }
            rows.push(b.intern(&row)?);
        }
        Ok(Table { rows, wild: b.intern(&wild)? })
    }

    /// The (specific, wildcard) rows for value `v`.
    #[inline]
    pub(super) fn rows(&self, v: usize) -> (u32, u32) {
        (self.rows.get(v).copied().unwrap_or(0), self.wild)
    }
}

fn set(bits: &mut [u64], r: usize, on: bool) {
    if let Some(w) = bits.get_mut(r / 64) {
        if on {
            *w |= 1 << (r % 64);
        } else {
            *w &= !(1 << (r % 64));
        }
    }
}

/// The classifier of one family: rules are local indices into `ids`.
pub(super) struct Family<K> {
    src: Dim<K>,
    dst: Dim<K>,
    proto: Table,
    sport: Dim<u16>,
    dport: Dim<u16>,
    dscp: Table,
    rows: Rows,
    /// Local rule index -> index in the original rule list.
    pub(super) ids: Vec<u32>,
}

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

impl<K: Point> Family<K> {
    /// Compiles the rules `sels` (with original indices `ids`), mapping each
    /// selector's addresses to this family with `addr`.
    pub(super) fn build(
        sels: &[RuleSelector],
        ids: Vec<u32>,
        addr: impl Fn(&RuleSelector) -> ((K, K), (K, K)),
    ) -> Result<Self, &'static str> {
        let n = sels.len();
        let mut b = RowsBuilder::new(n);
        let (srcs, dsts): (Vec<_>, Vec<_>) = sels.iter().map(&addr).unzip();
        let src = Dim::build(&srcs, &mut b)?;
        let dst = Dim::build(&dsts, &mut b)?;
        let sp: Vec<_> = sels.iter().map(|s| (s.src_ports.start, s.src_ports.end)).collect();
        let dp: Vec<_> = sels.iter().map(|s| (s.dst_ports.start, s.dst_ports.end)).collect();
        let sport = Dim::build(&sp, &mut b)?;
        let dport = Dim::build(&dp, &mut b)?;
        let proto_of = |r: usize| sels.get(r).and_then(|s| s.proto);
        let proto =
            Table::build(256, n, |r| proto_of(r).is_none(), |r, v| proto_of(r) == Some(v as u8), &mut b)?;
        let mask = |r: usize| sels.get(r).map_or(0, |s| s.dscp.0);
        let dscp = Table::build(64, n, |r| mask(r) == u64::MAX, |r, v| mask(r) >> v & 1 == 1, &mut b)?;
        Ok(Family { src, dst, proto, sport, dport, dscp, rows: b.finish(), ids })
    }

    #[inline]
    fn pairs(&self, p: &Point6<K>) -> [(u32, u32); 6] {
        [
            self.dst.rows(p.dst),
            self.src.rows(p.src),
            p.proto.map_or((0, self.proto.wild), |v| self.proto.rows(v as usize)),
            p.dport.map_or(self.dport.wild_only(), |v| self.dport.rows(v)),
            p.sport.map_or(self.sport.wild_only(), |v| self.sport.rows(v)),
            self.dscp.rows((p.dscp & 63) as usize),
        ]
    }

    /// Original index of the first rule matching `p`.
    #[inline]
    pub(super) fn first(&self, p: &Point6<K>) -> Option<u32> {
        let local = self.rows.find(&self.pairs(p), |_| true)?;
        self.ids.get(local as usize).copied()
    }

    /// Calls `f` with the original index of every rule matching `p`, in
    /// order, until `f` returns true.
    pub(super) fn each(&self, p: &Point6<K>, mut f: impl FnMut(u32) -> bool) {
        self.rows.find(&self.pairs(p), |l| self.ids.get(l as usize).is_none_or(|g| f(*g)));
    }

    /// Bytes used by the lookup tables.
    pub(super) fn bytes(&self) -> usize {
        let dim = |n: usize, k: usize| n * (k + 4);
        self.rows.bytes()
            + dim(self.src.bounds.len(), size_of::<K>())
            + dim(self.dst.bounds.len(), size_of::<K>())
            + dim(self.sport.bounds.len(), 2)
            + dim(self.dport.bounds.len(), 2)
            + 4 * (256 + 64)
    }
}
