//! A page's body under a byte budget, measured as the transport carries it.

/// How large a page's JSON body may be, and how its size is counted where it
/// is carried: the transport's rule, not the domain's (a Lambda proxy
/// response escapes its body once more: `items_aws::limits::proxy_body_size`).
#[derive(Debug, Clone, Copy)]
pub struct BodyBudget {
    pub max_bytes: usize,
    /// The size a JSON text takes where it is carried.
    pub size_of: fn(json: &[u8]) -> usize,
}

impl BodyBudget {
    /// No bound.
    pub const UNBOUNDED: Self = Self { max_bytes: usize::MAX, size_of: plain_size };
}

/// A JSON text carried as it is.
pub fn plain_size(json: &[u8]) -> usize {
    json.len()
}

/// A JSON array body filled under a [`BodyBudget`]: what one listing or
/// history page may hold.
pub(crate) struct Body {
    bytes: usize,
    budget: BodyBudget,
    empty: bool,
}

impl Body {
    pub(crate) fn new(budget: BodyBudget) -> Self {
        Self { bytes: (budget.size_of)(b"[]"), budget, empty: true }
    }

    /// Counts `value` in if it fits, or if the body is still empty (a page
    /// always makes progress); `false`: the page ends before it.
    pub(crate) fn takes(&mut self, value: &impl serde::Serialize) -> bool {
        let json = serde_json::to_vec(value).unwrap_or_default();
        let size = (self.budget.size_of)(&json) + usize::from(!self.empty);
        if !self.empty && self.bytes + size > self.budget.max_bytes {
            return false;
        }
        self.bytes += size;
        self.empty = false;
        true
    }
}
