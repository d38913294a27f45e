//! Reading `POST /v1/moderations` bodies into pairs. Accepted JSON `input` forms:
//!
//! - `"text"` and `["text", ...]`: OpenAI's text form, one pair per string (text only);
//! - `[{"type":"text","text":...}, {"type":"image_url","image_url":{"url":"data:..."}}]`:
//!   OpenAI's multi-modal form, one pair (at most one text and one image part);
//! - `[[parts...], [parts...]]`: the batch form, one pair per inner list;
//! - `{"image": "<base64 or data: URL>", "text": "..."}` and a list of such objects.
//!
//! Images come inline only: `data:` URLs or base64. Remote URLs are refused (the server
//! never fetches). Unknown fields are refused so that typos do not pass silently.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::AppError;
use crate::moderation::ModerationItem;

/// Standard base64, padding optional (clients differ).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The JSON body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModerationRequest {
    pub input: Value,
    /// Accepted for OpenAI compatibility and ignored: the server's current model answers
    /// (the response names it).
    #[serde(default)]
    pub model: Option<String>,
    /// `false` keeps only hashes and scores of the content in the decision log.
    #[serde(default = "default_store")]
    pub store: bool,
}

fn default_store() -> bool {
    true
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::BadRequest(message.into())
}

/// The pairs in a JSON `input`.
pub fn items_from_json(input: &Value) -> Result<Vec<ModerationItem>, AppError> {
    match input {
        Value::String(text) => Ok(vec![ModerationItem { image: None, text: Some(text.clone()) }]),
        Value::Object(pair) => Ok(vec![pair_object(pair, "input")?]),
        Value::Array(list) if list.is_empty() => Err(bad("`input` is empty: send a text, an image, or both")),
        Value::Array(list) => {
            let kind = |v: &Value| match v {
                Value::String(_) => "string",
                Value::Array(_) => "list",
                Value::Object(o) if o.contains_key("type") => "content part",
                Value::Object(_) => "object",
                _ => "other",
            };
            let first = kind(&list[0]);
            if let Some((i, other)) = list.iter().enumerate().find(|(_, v)| kind(v) != first) {
                return Err(bad(format!(
                    "input[{i}] is a {}, but input[0] is a {first}: a list holds strings, content parts, lists of \
                     content parts, or {{image, text}} objects, not a mix",
                    kind(other)
                )));
            }
            match first {
                "string" => Ok(list
                    .iter()
                    .map(|v| ModerationItem { image: None, text: v.as_str().map(str::to_string) })
                    .collect()),
                "content part" => Ok(vec![content_parts(list, "input")?]),
                "list" => list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| content_parts(v.as_array().expect("kind checked"), &format!("input[{i}]")))
                    .collect(),
                "object" => list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| pair_object(v.as_object().expect("kind checked"), &format!("input[{i}]")))
                    .collect(),
                _ => Err(bad("`input` must be a string, a list, or an {image, text} object")),
            }
        }
        _ => Err(bad("`input` must be a string, a list, or an {image, text} object")),
    }
}

/// One pair from OpenAI content parts.
fn content_parts(parts: &[Value], place: &str) -> Result<ModerationItem, AppError> {
    if parts.is_empty() {
        return Err(bad(format!("{place} is an empty list of content parts")));
    }
    let mut item = ModerationItem::default();
    for (j, part) in parts.iter().enumerate() {
        let here = format!("{place}[{j}]");
        let part = part.as_object().ok_or_else(|| bad(format!("{here} is not a content part object")))?;
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                only_fields(part, &["type", "text"], &here)?;
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{here}.text must be a string")))?;
                if item.text.replace(text.to_string()).is_some() {
                    return Err(bad(format!("{place} has more than one text part; send one text per pair")));
                }
            }
            Some("image_url") => {
                only_fields(part, &["type", "image_url"], &here)?;
                let url = match part.get("image_url") {
                    Some(Value::Object(o)) => {
                        only_fields(o, &["url", "detail"], &format!("{here}.image_url"))?;
                        o.get("url").and_then(Value::as_str)
                    }
                    Some(Value::String(s)) => Some(s.as_str()),
                    _ => None,
                }
                .ok_or_else(|| bad(format!("{here}.image_url.url must be a string")))?;
                let bytes = image_from_url(url).map_err(|e| e.at(&format!("{here}.image_url.url")))?;
                if item.image.replace(bytes).is_some() {
                    return Err(bad(format!("{place} has more than one image part; send one image per pair")));
                }
            }
            Some(other) => return Err(bad(format!("{here}.type `{other}` is unknown: use `text` or `image_url`"))),
            None => return Err(bad(format!("{here}.type is missing"))),
        }
    }
    Ok(item)
}

/// One pair from `{"image": ..., "text": ...}`.
fn pair_object(pair: &Map<String, Value>, place: &str) -> Result<ModerationItem, AppError> {
    only_fields(pair, &["image", "text"], place)?;
    let text = match pair.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad(format!("{place}.text must be a string"))),
    };
    let image = match pair.get("image") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.starts_with("data:") || looks_remote(s) => {
            Some(image_from_url(s).map_err(|e| e.at(&format!("{place}.image")))?)
        }
        Some(Value::String(s)) => Some(decode_base64(s).map_err(|e| e.at(&format!("{place}.image")))?),
        Some(_) => return Err(bad(format!("{place}.image must be a base64 string or a data: URL"))),
    };
    Ok(ModerationItem { image, text })
}

fn only_fields(object: &Map<String, Value>, allowed: &[&str], place: &str) -> Result<(), AppError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => {
            Err(bad(format!("{place} has an unknown field `{unknown}` (allowed: {})", allowed.join(", "))))
        }
        None => Ok(()),
    }
}

fn looks_remote(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    ["http://", "https://", "ftp://", "file://", "//"].iter().any(|p| lower.starts_with(p))
}

/// The bytes of a `data:[<type>][;base64],<data>` URL. The declared type is ignored: the
/// bytes' magic number decides later.
fn image_from_url(url: &str) -> Result<Vec<u8>, AppError> {
    if looks_remote(url) {
        return Err(bad("remote image URLs are not fetched (the server never downloads); send the image inline as a \
             data:image/...;base64,... URL or upload it as multipart/form-data"));
    }
    let rest = url.strip_prefix("data:").ok_or_else(|| bad("must be a data:image/...;base64,... URL"))?;
    let (meta, data) = rest.split_once(',').ok_or_else(|| bad("the data: URL has no `,` before its data"))?;
    if !meta.split(';').any(|p| p.eq_ignore_ascii_case("base64")) {
        return Err(bad("the data: URL must be base64-encoded (data:image/png;base64,...)"));
    }
    decode_base64(data)
}

fn decode_base64(data: &str) -> Result<Vec<u8>, AppError> {
    // Line breaks are common in pasted base64; anything else out of the alphabet is an error.
    let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    BASE64.decode(cleaned.as_bytes()).map_err(|e| bad(format!("invalid base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_input_form_gives_its_pairs() {
        assert_eq!(items_from_json(&json!("hi")).unwrap().len(), 1);
        assert_eq!(items_from_json(&json!(["a", "b", "c"])).unwrap().len(), 3);
        let png = "data:image/png;base64,iVBORw0KGgo=";
        let parts = json!([{"type": "text", "text": "t"}, {"type": "image_url", "image_url": {"url": png}}]);
        let items = items_from_json(&parts).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].text.as_deref(), Some("t"));
        assert_eq!(items[0].image.as_deref(), Some(&b"\x89PNG\r\n\x1a\n"[..]));
        assert_eq!(items_from_json(&json!([parts.clone(), parts])).unwrap().len(), 2);
        let pairs = items_from_json(&json!([{"image": "iVBORw0KGgo", "text": "x"}, {"text": "y"}])).unwrap();
        assert_eq!(pairs.len(), 2);
        assert!(pairs[0].image.is_some() && pairs[1].image.is_none());
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let message = |v: Value| items_from_json(&v).unwrap_err().to_string();
        assert!(message(json!([])).contains("empty"));
        assert!(message(json!(["a", {"text": "b"}])).contains("not a mix"));
        assert!(message(json!([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])).contains("remote"));
        assert!(message(json!({"image": "http://x/y.png"})).contains("remote"));
        assert!(message(json!({"image": "@@@not base64"})).contains("invalid base64"));
        assert!(message(json!({"image": "AAAA", "colour": "red"})).contains("unknown field `colour`"));
        assert!(message(json!([{"type": "audio"}])).contains("`audio` is unknown"));
        assert!(
            message(json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]))
                .contains("more than one text")
        );
        assert!(message(json!(42)).contains("must be a string"));
    }
}
