/// The versions an `If-Match` header accepts: `*`, or a list of `"<version>"` entity tags.
///
/// Tags that are not ours (`"abc"`, weak tags) parse but can never match, which answers 412
/// as RFC 9110 asks for an If-Match that names no current representation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    Any,
    OneOf(Vec<i64>),
}

impl ExpectedVersion {
    pub fn parse(header: &str) -> ExpectedVersion {
        if header.trim() == "*" {
            return ExpectedVersion::Any;
        }
        let versions = header
            .split(',')
            .filter_map(|tag| {
                let tag = tag.trim();
                let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
                inner.parse::<i64>().ok()
            })
            .collect();
        ExpectedVersion::OneOf(versions)
    }

    pub fn matches(&self, current: i64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::OneOf(versions) => versions.contains(&current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags() {
        assert!(ExpectedVersion::parse("\"3\"").matches(3));
        assert!(!ExpectedVersion::parse("\"3\"").matches(4));
        assert!(ExpectedVersion::parse("\"1\", \"4\"").matches(4));
        assert!(ExpectedVersion::parse("*").matches(9));
        assert!(!ExpectedVersion::parse("3").matches(3));
        assert!(!ExpectedVersion::parse("W/\"3\"").matches(3));
        assert!(!ExpectedVersion::parse("\"x\"").matches(0));
    }
}
