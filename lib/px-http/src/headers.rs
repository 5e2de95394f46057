//! Header fields in arrival order, with their original case.
//!
//! [`Headers`] is a plain vector of [`Header`] pairs: HTTP/1 allows a field to repeat, field order can
//! matter (`Set-Cookie`), and a proxy should forward names in the case the client wrote them. Names
//! compare case-insensitively; values are kept as the raw bytes the peer sent, with surrounding
//! whitespace already trimmed by the parser.
//!
//! Parsed heads share one [`Bytes`] buffer, so building the list costs no copy per field.

use bytes::Bytes;

/// One header field: name and value as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Field name in its original case.
    pub name: Bytes,
    /// Field value, without leading or trailing whitespace.
    pub value: Bytes,
}

impl Header {
    /// Builds a header from anything convertible to bytes (copies `&'static` data for free).
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Whether this field's name equals `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// An ordered list of header fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<Header>,
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            fields: Vec::with_capacity(n),
        }
    }

    /// Number of fields (repeats counted).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there is no field at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// All fields in arrival order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.fields.iter()
    }

    /// Appends a field at the end.
    pub fn push(&mut self, header: Header) {
        self.fields.push(header);
    }

    /// Appends a field from name and value.
    pub fn append(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.fields.push(Header::new(name, value));
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.fields.iter().find(|h| h.is(name)).map(|h| &h.value)
    }

    /// The values of every field called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.fields
            .iter()
            .filter(move |h| h.is(name))
            .map(|h| &h.value)
    }

    /// Whether some field is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.fields.iter().any(|h| h.is(name))
    }

    /// Removes every field called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|h| !h.is(name));
        before - self.fields.len()
    }

    /// Replaces the first field called `name` in place (dropping later repeats), or appends it.
    pub fn set(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        let mut found = false;
        self.fields.retain_mut(|h| {
            if !h.name.eq_ignore_ascii_case(&name) {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            h.value = value.clone();
            true
        });
        if !found {
            self.fields.push(Header { name, value });
        }
    }

    /// Whether the comma-separated list in the fields called `name` holds `token` (ASCII case ignored).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The trimmed, non-empty elements of the comma-separated lists in every field called `name`.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name)
            .flat_map(|v| v.split(|b| *b == b','))
            .map(trim_ows)
            .filter(|t| !t.is_empty())
    }

    /// Keeps only the fields for which `keep` returns true.
    pub fn retain(&mut self, keep: impl FnMut(&Header) -> bool) {
        self.fields.retain(keep);
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<T: IntoIterator<Item = Header>>(iter: T) -> Self {
        Self {
            fields: iter.into_iter().collect(),
        }
    }
}

/// Copies httparse's borrowed fields into [`Headers`] sharing `buf` (the buffer they were parsed from).
pub(crate) fn collect_headers(buf: &Bytes, parsed: &[httparse::Header<'_>]) -> Headers {
    parsed
        .iter()
        .map(|h| Header {
            name: buf.slice_ref(h.name.as_bytes()),
            value: buf.slice_ref(trim_ows(h.value)),
        })
        .collect()
}

/// How many httparse header slots a head needs: one per line at most, never above `max`.
pub(crate) fn slots_for(head: &[u8], max: usize) -> usize {
    memchr::memchr_iter(b'\n', head).count().min(max)
}

/// Trims optional whitespace (SP and HTAB) from both ends.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Headers {
        let mut h = Headers::new();
        h.append("Host", "a.example");
        h.append("Connection", "keep-alive, Upgrade");
        h.append("connection", " x-foo ,, ");
        h.append("X-Foo", "1");
        h
    }

    #[test]
    fn lookup_is_case_insensitive() {
        let h = sample();
        assert_eq!(h.get("host").map(|v| &v[..]), Some(&b"a.example"[..]));
        assert_eq!(h.get_all("CONNECTION").count(), 2);
        assert!(h.contains("x-foo"));
        assert!(!h.contains("x-bar"));
    }

    #[test]
    fn tokens_are_split_and_trimmed() {
        let h = sample();
        let t: Vec<&[u8]> = h.tokens("connection").collect();
        assert_eq!(t, vec![&b"keep-alive"[..], b"Upgrade", b"x-foo"]);
        assert!(h.has_token("Connection", "upgrade"));
        assert!(!h.has_token("Connection", "close"));
    }

    #[test]
    fn set_replaces_first_and_drops_repeats() {
        let mut h = sample();
        h.set("CONNECTION", "close");
        assert_eq!(h.get_all("connection").count(), 1);
        assert_eq!(
            h.iter().nth(1).map(|x| &x.name[..]),
            Some(&b"Connection"[..])
        );
        h.set("X-New", "v");
        assert_eq!(h.len(), 4);
        assert_eq!(h.remove("x-foo"), 1);
    }

    #[test]
    fn trim() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
    }
}
