//! Values that live outside their entry because they grow or change in
//! place: long strings and the collection types.

use super::hash::Hash;

use super::list::List;

/// A boxed value owned by an [`Entry`](super::entry::Entry).
#[derive(Debug, Clone)]
pub enum Object {
    /// A string longer than an embedded one, or one built by APPEND or
    /// SETRANGE (Redis's `raw` encoding).
    Raw(Vec<u8>),
    List(List),
    Hash(Hash),
    /// A sorted set (store::zset).
    ZSet(super::zset::ZSet),
    /// A SET, `intset` or `hashtable` encoded (see store::set).
    Set(super::set::Set),
}

impl Object {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::Raw(_) => "string",
            Object::List(_) => "list",
            Object::Hash(_) => "hash",
            Object::ZSet(_) => "zset",
            Object::Set(_) => "set",
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Object::Raw(_) => "raw",
            // Redis 7.0 uses a quicklist for every list, however small.
            Object::List(_) => "quicklist",
            Object::Hash(h) => h.encoding(),
            Object::ZSet(z) => z.encoding(),
            Object::Set(s) => s.encoding(),
        }
    }

    /// How many allocations freeing this value costs (Redis's
    /// `lazyfreeGetFreeEffort`): UNLINK frees values costing more than
    /// [`LAZYFREE_THRESHOLD`](super::lazyfree::LAZYFREE_THRESHOLD) off the
    /// connection's thread.
    pub fn free_effort(&self) -> usize {
        match self {
            Object::Raw(_) => 1,
            // Redis counts a quicklist's nodes.
            Object::List(l) => l.node_count(),
            Object::Hash(h) => h.free_effort(),
            Object::ZSet(z @ super::zset::ZSet::Skiplist(_)) => z.len(),
            Object::ZSet(_) => 1,
            Object::Set(s) => s.free_effort(),
        }
    }
}
