//! Ids that come from an API and go back into a request path: checked against their documented
//! shape, then written as ONE path segment. A campaign id `..\people\vap` once sent a request to
//! `/v2/people/vap`; a CTR id with `../` took the bearer token to another path of the origin.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// A UUID as the Proofpoint APIs write them (36 characters, hex digits and dashes in the 8-4-4-4-12
/// places, any case).
pub fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// What stays as it is in a path segment: letters, digits and `-._~` (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `id` as one path segment: every other byte percent-encoded (`/`, `\`, `?`, `#`, `%` …), and
/// `.` or `..` (which a URL would resolve) refused. `None`: not usable in a path.
pub fn path_segment(id: &str) -> Option<String> {
    if id.is_empty() || id == "." || id == ".." {
        return None;
    }
    Some(utf8_percent_encode(id, SEGMENT).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_and_nothing_else() {
        assert!(is_uuid("440def43-c322-42ba-a6d6-a2306128ea3b"));
        assert!(is_uuid("440DEF43-C322-42BA-A6D6-A2306128EA3B"));
        for bad in [
            "",
            "../../v2/people/vap",
            "440def43-c322-42ba-a6d6-a2306128ea3",
            "440def43-c322-42ba-a6d6-a2306128ea3bb",
            "440def43xc322-42ba-a6d6-a2306128ea3b",
            "440def43-c322-42ba-a6d6-a2306128ea/b",
            "ü40def43-c322-42ba-a6d6-a2306128ea3",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }

    #[test]
    fn a_segment_never_leaves_its_place_in_the_path() {
        assert_eq!(path_segment("aa9b3d62-4d72").as_deref(), Some("aa9b3d62-4d72"));
        assert_eq!(path_segment("..\\people\\vap").as_deref(), Some("..%5Cpeople%5Cvap"));
        assert_eq!(path_segment("../x?y#z%").as_deref(), Some("..%2Fx%3Fy%23z%25"));
        assert_eq!(path_segment(".."), None);
        assert_eq!(path_segment("."), None);
        assert_eq!(path_segment(""), None);
    }
}
