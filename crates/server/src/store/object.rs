//! Values that live outside their entry because they grow or change in
//! place: long strings now, the collection types as they are added.

/// A boxed value owned by an [`Entry`](super::entry::Entry).
#[derive(Debug, Clone)]
pub enum Object {
    /// A string longer than an embedded one, or one built by APPEND or
    /// SETRANGE (Redis's `raw` encoding).
    Raw(Vec<u8>),
    /// A sorted set (store::zset).
    ZSet(super::zset::ZSet),
}

impl Object {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::Raw(_) => "string",
            Object::ZSet(_) => "zset",
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Object::Raw(_) => "raw",
            Object::ZSet(z) => z.encoding(),
        }
    }

    /// How many allocations freeing this value costs (Redis's
    /// `lazyfreeGetFreeEffort`): UNLINK frees values costing more than
    /// [`LAZYFREE_THRESHOLD`](super::lazyfree::LAZYFREE_THRESHOLD) off the
    /// connection's thread.
    pub fn free_effort(&self) -> usize {
        match self {
            Object::Raw(_) => 1,
            Object::ZSet(z @ super::zset::ZSet::Skiplist(_)) => z.len(),
            Object::ZSet(_) => 1,
        }
    }
}
