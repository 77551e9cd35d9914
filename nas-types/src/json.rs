//! JSON from a user's file (a space file, an architecture, `--config @file`), where a key
//! given twice in one object is an error naming where: `serde_json` keeps the last one
//! silently, so `{"out": 4, "out": 8}` would build a layer of 8 channels with no word.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// `text` as a JSON value; a key given twice in one object is an error naming its path
/// (`layers[0].candidates: key `a` is given twice at line 2 column 70`).
/// A byte-order mark at the start (what some Windows editors write) is skipped.
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut d = serde_json::Deserializer::from_str(text);
    let v = At(String::new()).deserialize(&mut d)?;
    d.end()?;
    Ok(v)
}

/// The largest JSON file read (a space, an architecture, a config): far past any of
/// them, and a bound on what an endless input (`/dev/zero`, a pipe) takes.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// A JSON file's text, read whole: a file past [`MAX_FILE_BYTES`] is an error (before,
/// `--space-file /dev/zero` was read until memory ran out), and so is one that is not
/// UTF-8.
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB, far past any JSON file this tool reads",
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(text)
}

/// A value being read, and its path in the document (empty at the top).
struct At(String);

impl At {
    fn key(&self, k: &str) -> String {
        match self.0.is_empty() {
            true => k.to_string(),
            false => format!("{}.{k}", self.0),
        }
    }
}

impl<'de> DeserializeSeed<'de> for At {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for At {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::from(x))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = vec![];
        while let Some(v) = seq.next_element_seed(At(format!("{}[{}]", self.0, out.len())))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                let at = match self.0.is_empty() {
                    true => String::new(),
                    false => format!("{}: ", self.0),
                };
                return Err(de::Error::custom(format!("{at}key `{k}` is given twice")));
            }
            let v = map.next_value_seed(At(self.key(&k)))?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, read_file};

    /// What a Windows editor saves (a byte-order mark first) reads; before, it was
    /// "expected value at line 1 column 1" with no word of the mark.
    #[test]
    fn a_byte_order_mark_is_skipped() {
        assert_eq!(
            parse("\u{feff}{\"a\": 1}").unwrap(),
            serde_json::json!({"a": 1})
        );
    }

    /// An endless input stops at the bound with an error instead of taking the
    /// machine's memory (before, `--space-file /dev/zero` read until memory ran out).
    #[cfg(unix)]
    #[test]
    fn an_endless_file_is_refused_at_the_bound() {
        let e = read_file(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("larger than 64 MiB"), "{e}");
    }

    #[test]
    fn a_key_given_twice_is_an_error_naming_where() {
        let e = parse(
            r#"{"layers": [{"op": "conv"}, {"choice": "b", "candidates": {"a": [], "a": [1]}}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("layers[1].candidates: key `a` is given twice at line 1 column"),
            "{e}"
        );
        let e = parse(r#"{"x": 1, "x": 2}"#).unwrap_err().to_string();
        assert!(e.starts_with("key `x` is given twice"), "{e}");
    }

    #[test]
    fn values_read_as_serde_json_reads_them() {
        let text = r#"{"a": [1, -2, 3.5, 1e300, 18446744073709551615, "s\u00e9", null, true],
                       "b": {"c": {}}, "d": []}"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        assert!(parse("{} x").is_err());
        assert!(parse("[1,]").is_err());
    }
}
