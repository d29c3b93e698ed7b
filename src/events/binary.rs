//! Event arguments: JSON values plus the binary attachments their placeholders point at.
//!
//! On the wire a binary argument is replaced by `{"_placeholder":true,"num":N}` in the JSON and
//! sent as the N-th binary message after the packet. [`Args`] keeps that shape: the values
//! hold the placeholders and the attachments sit beside them, so binary data may appear
//! anywhere in the arguments, nested in arrays and objects, and nothing is copied.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::packet::DecodeError;

/// The arguments of an event or an acknowledgement.
///
/// ```
/// use serde_json::json;
/// use wsio::events::Args;
///
/// let mut args = Args::new().with(json!("avatar.png"));
/// let image = args.attach(vec![0x89, b'P', b'N', b'G']);
/// args.push(json!({ "image": image, "size": 4 }));
///
/// assert_eq!(args.get::<String>(0).unwrap(), "avatar.png");
/// let image = args.value(1).and_then(|meta| args.binary(&meta["image"]));
/// assert_eq!(image.unwrap().as_ref(), b"\x89PNG");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    values: Vec<Value>,
    attachments: Vec<Bytes>,
}

impl Args {
    /// Returns empty arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns arguments with `values` and no binary data.
    pub fn from_values(values: Vec<Value>) -> Self {
        Self {
            values,
            attachments: Vec::new(),
        }
    }

    /// Serializes `value` into arguments holding it alone.
    pub fn one(value: impl Serialize) -> Result<Self, serde_json::Error> {
        Ok(Self::from_values(vec![serde_json::to_value(value)?]))
    }

    /// Returns these arguments with `value` appended.
    pub fn with(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }

    /// Returns these arguments with a binary argument appended.
    pub fn with_binary(mut self, data: impl Into<Bytes>) -> Self {
        let placeholder = self.attach(data);
        self.values.push(placeholder);
        self
    }

    /// Appends an argument.
    pub fn push(&mut self, value: impl Into<Value>) {
        self.values.push(value.into());
    }

    /// Adds binary data and returns the placeholder that stands for it: put the placeholder
    /// anywhere in an argument (or several times).
    pub fn attach(&mut self, data: impl Into<Bytes>) -> Value {
        self.attachments.push(data.into());
        placeholder(self.attachments.len() - 1)
    }

    /// The number of arguments.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The arguments as JSON, binary ones as placeholders.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The binary attachments, in placeholder order.
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }

    /// The argument at `index`, as JSON.
    pub fn value(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// Deserializes the argument at `index`; a missing argument reads as `null`.
    pub fn get<T: DeserializeOwned>(&self, index: usize) -> Result<T, serde_json::Error> {
        let value = self.values.get(index).cloned().unwrap_or(Value::Null);
        serde_json::from_value(value)
    }

    /// The binary data `value` stands for, if it is a placeholder: pass an argument or any
    /// value nested in one.
    pub fn binary(&self, value: &Value) -> Option<&Bytes> {
        placeholder_index(value)
            .ok()
            .flatten()
            .and_then(|index| self.attachments.get(index))
    }

    /// The binary argument at `index`, if that argument is a placeholder.
    pub fn binary_at(&self, index: usize) -> Option<&Bytes> {
        self.values.get(index).and_then(|value| self.binary(value))
    }

    /// Splits the arguments into their values and attachments.
    pub fn into_parts(self) -> (Vec<Value>, Vec<Bytes>) {
        (self.values, self.attachments)
    }

    /// Joins values and attachments, checking that every placeholder points at an attachment.
    pub fn from_parts(values: Vec<Value>, attachments: Vec<Bytes>) -> Result<Self, DecodeError> {
        let args = Self {
            values,
            attachments,
        };
        args.check_placeholders()?;
        Ok(args)
    }

    /// Fails if a placeholder is malformed or points past the attachments.
    pub(crate) fn check_placeholders(&self) -> Result<(), DecodeError> {
        let count = self.attachments.len();
        let mut pending: Vec<&Value> = self.values.iter().collect();
        while let Some(value) = pending.pop() {
            match value {
                Value::Array(items) => pending.extend(items),
                Value::Object(map) => match placeholder_index(value)? {
                    Some(index) if index < count => {}
                    Some(index) => return Err(DecodeError::PlaceholderOutOfRange { index, count }),
                    None => pending.extend(map.values()),
                },
                _ => {}
            }
        }
        Ok(())
    }
}

impl From<Vec<Value>> for Args {
    fn from(values: Vec<Value>) -> Self {
        Self::from_values(values)
    }
}

/// A JSON array becomes one argument per element; any other value becomes a single argument
/// (so `json!([[1, 2]])` is one array argument).
impl From<Value> for Args {
    fn from(value: Value) -> Self {
        match value {
            Value::Array(values) => Self::from_values(values),
            other => Self::from_values(vec![other]),
        }
    }
}

impl From<()> for Args {
    fn from((): ()) -> Self {
        Self::new()
    }
}

/// The placeholder object for attachment `index`.
fn placeholder(index: usize) -> Value {
    let mut map = Map::new();
    map.insert("_placeholder".into(), Value::Bool(true));
    map.insert("num".into(), Value::from(index));
    Value::Object(map)
}

/// `Ok(Some(n))` for a placeholder, `Ok(None)` for any other value, and an error for an
/// object claiming to be a placeholder without a valid index.
fn placeholder_index(value: &Value) -> Result<Option<usize>, DecodeError> {
    let Value::Object(map) = value else {
        return Ok(None);
    };
    if map.get("_placeholder") != Some(&Value::Bool(true)) {
        return Ok(None);
    }
    map.get("num")
        .and_then(Value::as_u64)
        .and_then(|num| usize::try_from(num).ok())
        .map(Some)
        .ok_or(DecodeError::InvalidPlaceholder)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn attach_returns_the_wire_placeholder() {
        let mut args = Args::new();
        assert_eq!(
            args.attach(vec![1]),
            json!({"_placeholder": true, "num": 0})
        );
        assert_eq!(
            args.attach(vec![2]),
            json!({"_placeholder": true, "num": 1})
        );
        assert_eq!(args.attachments().len(), 2);
    }

    #[test]
    fn nested_placeholders_resolve() {
        let mut args = Args::new();
        let blob = args.attach(Bytes::from_static(b"abc"));
        args.push(json!({"files": [{"data": blob}]}));
        let data = &args.value(0).unwrap()["files"][0]["data"];
        assert_eq!(args.binary(data).unwrap().as_ref(), b"abc");
        assert_eq!(args.binary_at(0), None);
        assert!(args.check_placeholders().is_ok());
    }

    #[test]
    fn placeholder_checks() {
        let out_of_range = Args::from_parts(vec![placeholder(1)], vec![Bytes::new()]);
        assert_eq!(
            out_of_range,
            Err(DecodeError::PlaceholderOutOfRange { index: 1, count: 1 })
        );
        let bad = json!([{"_placeholder": true, "num": -1}]);
        assert_eq!(
            Args::from_parts(vec![bad], vec![]),
            Err(DecodeError::InvalidPlaceholder)
        );
        let not_one = json!({"_placeholder": false, "num": 9});
        assert!(Args::from_parts(vec![not_one], vec![]).is_ok());
    }

    #[test]
    fn conversions() {
        assert_eq!(Args::from(json!([1, "a"])).len(), 2);
        assert_eq!(Args::from(json!([[1, 2]])).len(), 1);
        assert_eq!(Args::from(json!("a")).len(), 1);
        assert_eq!(Args::from(()).len(), 0);
        assert_eq!(
            Args::one(vec![1, 2]).unwrap().get::<Vec<u8>>(0).unwrap(),
            [1, 2]
        );
    }
}
