//! The OpenAPI 3.1 document (`/openapi.json`) and a self-contained page that renders it
//! (`/docs`; no scripts or assets from elsewhere). The document is written here by hand;
//! a test checks that every documented operation is routed and every route documented.

use axum::Json;
use axum::response::Html;
use serde_json::{Value, json};

use crate::routes::Routes;

pub fn routes() -> Routes {
    Routes::new().get("/openapi.json", || async { Json(document()) }).get("/docs", docs)
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn filter_parameters() -> Vec<Value> {
    let p = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema });
    vec![
        p("verdict", "The model's verdict.", json!({ "type": "string", "enum": ["flagged", "not_flagged"] })),
        p("reviewed", "Only reviewed (true) or unreviewed (false) decisions.", json!({ "type": "boolean" })),
        p("since", "RFC 3339, inclusive.", json!({ "type": "string", "format": "date-time" })),
        p("until", "RFC 3339, exclusive.", json!({ "type": "string", "format": "date-time" })),
        p("model", "name@version of the model that decided.", json!({ "type": "string" })),
    ]
}

/// `review_match` of a moderation result (kept apart: `json!` nests only so deep).
fn review_match_schema() -> Value {
    json!({ "type": "object", "required": ["decision_id", "kind", "label", "reviewed_at"],
                    "description": "The reviewed decision that decided this one. exact: same image sha256 and normalised text; pdq: PDQ hashes within the distance threshold and the same normalised text (both give the reviewed label: score 1 or 0); embedding: the nearest reviewed neighbour in the same package's joint embedding space (the score is the neighbours' similarity-weighted vote blended with the model score by the best similarity).",
                    "properties": {
                    "decision_id": { "type": "integer" }, "kind": { "enum": ["exact", "pdq", "embedding"] },
                    "distance": { "type": "integer", "description": "PDQ bits differing of 256 (exact: 0, pdq)" },
                    "similarity": { "type": "number", "description": "Cosine similarity (embedding)" },
                    "label": { "enum": ["hateful", "not_hateful"] }, "reviewed_at": { "type": "string", "format": "date-time" } } })
}

/// A recorded decision (kept apart: `json!` nests only so deep).
fn decision_schema() -> Value {
    json!({ "type": "object", "properties": {
                    "id": { "type": "integer" }, "created_at": { "type": "string", "format": "date-time" },
                    "request_id": { "type": "string" }, "model": { "type": "string" }, "score": { "type": "number" },
                    "threshold": { "type": "number" }, "flagged": { "type": "boolean" }, "text": { "type": ["string", "null"] },
                    "text_sha256": { "type": "string" }, "text_source": { "type": "string" },
                    "image_sha256": { "type": ["string", "null"] }, "image_mime": { "type": ["string", "null"] },
                    "width": { "type": ["integer", "null"] }, "height": { "type": ["integer", "null"] },
                    "stored": { "type": "boolean" }, "has_image": { "type": "boolean" }, "latency_ms": { "type": "number" },
                    "caller": { "type": "string" }, "review_label": { "type": ["string", "null"] },
                    "reviewed_by": { "type": ["string", "null"] }, "reviewed_at": { "type": ["string", "null"] },
                    "model_score": { "type": ["number", "null"], "description": "The model's own score; score is the final one" },
                    "match_decision_id": { "type": ["integer", "null"], "description": "The reviewed decision that decided this one" },
                    "match_kind": { "type": ["string", "null"], "enum": ["exact", "pdq", "embedding", null] },
                    "match_value": { "type": ["number", "null"], "description": "PDQ distance or cosine similarity" },
                    "match_label": { "type": ["string", "null"], "description": "The matched decision's label then" } } })
}

/// `POST /v1/reviews/{id}/retraction`.
fn retraction_path() -> Value {
    json!({ "post": {
                "summary": "Retract a review from the review memory (role: admin)",
                "description": "The review stays in the decision's append-only history (a retraction is recorded beside it); the review memory stops matching on it at once, and remembers the decision by its latest review that was not retracted, if any. Retracting twice changes nothing.",
                "parameters": [{ "name": "id", "in": "path", "required": true, "description": "The review's id", "schema": { "type": "integer" } }],
                "responses": { "200": { "description": "review_id and decision_id" }, "404": error_response("No such review") } } })
}

/// The whole document.
pub fn document() -> Value {
    let id_param = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } });
    let mut list_params = filter_parameters();
    list_params.push(json!({ "name": "cursor", "in": "query", "schema": { "type": "string" }, "description": "next_cursor of the previous page." }));
    list_params.push(json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 50 } }));
    let mut export_params = filter_parameters();
    export_params.push(json!({ "name": "format", "in": "query", "required": true, "schema": { "type": "string", "enum": ["csv", "jsonl"] } }));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "memeguard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Scores memes (image + text) as hateful or not and records every decision. \
                `POST /v1/moderations` follows OpenAI's moderation API, so OpenAI client libraries work with base_url \
                pointing here. Authenticate with `Authorization: Bearer mg_...` (keys: `memeguard keys create`). \
                Roles: scorer < moderator < admin."
        },
        "components": {
            "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer", "description": "mg_... API key" } },
            "schemas": {
                "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": {
                    "type": { "type": "string" }, "message": { "type": "string" } } } } },
                "ContentPart": { "oneOf": [
                    { "type": "object", "required": ["type", "text"], "properties": { "type": { "const": "text" }, "text": { "type": "string" } } },
                    { "type": "object", "required": ["type", "image_url"], "properties": { "type": { "const": "image_url" },
                      "image_url": { "type": "object", "required": ["url"], "properties": { "url": { "type": "string", "description": "data:image/...;base64,... (remote URLs are refused)" } } } } }
                ] },
                "Pair": { "type": "object", "properties": {
                    "image": { "type": "string", "description": "base64 or a data: URL" }, "text": { "type": "string" } } },
                "ModerationRequest": { "type": "object", "required": ["input"], "additionalProperties": false, "properties": {
                    "input": { "oneOf": [
                        { "type": "string", "description": "One text (scored with a blank image)." },
                        { "type": "array", "items": { "type": "string" }, "description": "Several texts, one result each." },
                        { "type": "array", "items": { "$ref": "#/components/schemas/ContentPart" }, "description": "One image+text pair." },
                        { "type": "array", "items": { "type": "array", "items": { "$ref": "#/components/schemas/ContentPart" } }, "description": "Batch: one result per inner list." },
                        { "$ref": "#/components/schemas/Pair" },
                        { "type": "array", "items": { "$ref": "#/components/schemas/Pair" }, "description": "Batch of pairs." }
                    ] },
                    "model": { "type": "string", "description": "Accepted and ignored; the response names the model that answered." },
                    "store": { "type": "boolean", "default": true, "description": "false: keep only hashes and scores." } } },
                "ModerationResult": { "type": "object", "properties": {
                    "flagged": { "type": "boolean" },
                    "categories": { "type": "object", "properties": { "hate": { "type": "boolean" } } },
                    "category_scores": { "type": "object", "properties": { "hate": { "type": "number" } } },
                    "category_applied_input_types": { "type": "object", "properties": { "hate": { "type": "array", "items": { "enum": ["text", "image"] } } } },
                    "decision_id": { "type": "integer" },
                    "threshold": { "type": "number" },
                    "text_source": { "enum": ["given", "ocr", "none"] },
                    "placeholder_model": { "type": "boolean" },
                    "model_score": { "type": "number", "description": "The model's own score; category_scores.hate is the final one (after a review match), and flagged follows it." },
                    "review_match": { "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/ReviewMatch" }] } } },
                "ReviewMatch": review_match_schema(),
                "ModerationResponse": { "type": "object", "properties": {
                    "id": { "type": "string" }, "model": { "type": "string", "description": "name@version" },
                    "results": { "type": "array", "items": { "$ref": "#/components/schemas/ModerationResult" } } } },
                "Decision": decision_schema(),
                "Review": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "decision_id": { "type": "integer" }, "label": { "enum": ["hateful", "not_hateful"] },
                    "reviewer": { "type": "string" }, "note": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" } } }
            }
        },
        "security": [{ "apiKey": [] }],
        "paths": {
            "/v1/moderations": { "post": {
                "summary": "Score image+text pairs (role: scorer)",
                "description": "JSON in OpenAI's moderation format (plus a batch form), or multipart/form-data with an `image` file and optional `text` and `store`. Each result is recorded before the response is sent.",
                "requestBody": { "required": true, "content": {
                    "application/json": { "schema": { "$ref": "#/components/schemas/ModerationRequest" } },
                    "multipart/form-data": { "schema": { "type": "object", "properties": {
                        "image": { "type": "string", "format": "binary" }, "text": { "type": "string" }, "store": { "type": "boolean" } } } } } },
                "responses": {
                    "200": { "description": "One result per pair", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ModerationResponse" } } } },
                    "400": error_response("Malformed input: invalid base64, remote URL, empty input, unknown field, text too long, damaged image"),
                    "401": error_response("Missing or unknown API key"),
                    "413": error_response("Body, image bytes, image pixels or the request's pixels over the limit"),
                    "415": error_response("Not a PNG, JPEG, WebP or GIF (judged by its bytes), or a wrong Content-Type"),
                    "429": error_response("The queue or the pixel budget is full; see Retry-After"),
                    "503": error_response("No valid model is loaded") } } },
            "/v1/decisions": { "get": {
                "summary": "List decisions, newest first (role: moderator)",
                "parameters": list_params,
                "responses": { "200": { "description": "A page", "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "data": { "type": "array", "items": { "$ref": "#/components/schemas/Decision" } },
                    "next_cursor": { "type": ["string", "null"] } } } } } },
                    "400": error_response("Bad filter") } } },
            "/v1/decisions/export": { "get": {
                "summary": "Export decisions as CSV or JSONL, streamed (role: moderator)",
                "parameters": export_params,
                "responses": { "200": { "description": "text/csv or application/x-ndjson" }, "400": error_response("Bad filter or format") } } },
            "/v1/decisions/{id}": { "get": {
                "summary": "One decision with its review history (role: moderator)",
                "parameters": [id_param],
                "responses": { "200": { "description": "The decision and `reviews`", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Decision" } } } },
                    "404": error_response("No such decision") } } },
            "/v1/decisions/{id}/image": { "get": {
                "summary": "The decision's image as received (role: moderator)",
                "parameters": [id_param],
                "responses": { "200": { "description": "The image bytes" }, "404": error_response("No such decision, or no stored image") } } },
            "/v1/decisions/{id}/reviews": { "post": {
                "summary": "Add a moderator's review; the latest review is the decision's label (role: moderator)",
                "parameters": [id_param],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["label"], "properties": {
                    "label": { "enum": ["hateful", "not_hateful"] }, "note": { "type": "string" } } } } } },
                "responses": { "201": { "description": "The recorded review", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Review" } } } },
                    "404": error_response("No such decision") } } },
            "/v1/reviews/{id}/retraction": retraction_path(),
            "/v1/model": { "get": {
                "summary": "The served model package's manifest (role: scorer)",
                "responses": { "200": { "description": "id and manifest" }, "503": error_response("No valid model is loaded") } } },
            "/v1/admin/reload": { "post": {
                "summary": "Load a package from the models directory and swap it in without downtime (role: admin; also SIGHUP)",
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "package": { "type": "string", "description": "name@version or name; default: the newest package" } } } } } },
                "responses": { "200": { "description": "model, previous, changed" },
                    "404": error_response("No matching package"),
                    "422": error_response("The package failed validation or warm-up; the current model keeps serving") } } },
            "/healthz": { "get": { "summary": "Liveness", "security": [], "responses": { "200": { "description": "The process is up" } } } },
            "/readyz": { "get": { "summary": "Readiness: a model is loaded and the database takes writes", "security": [],
                "responses": { "200": { "description": "Ready" }, "503": { "description": "Not ready, with the reason" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics (admin key with --protect-metrics)", "security": [],
                "responses": { "200": { "description": "text/plain; version=0.0.4" } } } },
            "/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } },
            "/docs": { "get": { "summary": "This document as a page", "security": [], "responses": { "200": { "description": "HTML" } } } }
        }
    })
}

/// Minimal HTML escaping for text and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

async fn docs() -> Html<String> {
    let doc = document();
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>memeguard API</title>\
         <style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         code{background:#f3f3f3;padding:0 .2em}.m{font-weight:bold;display:inline-block;width:4rem}\
         section{border-top:1px solid #ddd;padding:.5rem 0}</style></head><body><h1>memeguard API</h1>",
    );
    html.push_str(&format!("<p>{}</p>", escape(doc["info"]["description"].as_str().unwrap_or(""))));
    html.push_str("<p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a></p>");
    if let Some(paths) = doc["paths"].as_object() {
        for (path, operations) in paths {
            for (method, op) in operations.as_object().into_iter().flatten() {
                html.push_str(&format!(
                    "<section><div><span class=\"m\">{}</span><code>{}</code> — {}</div>",
                    escape(&method.to_uppercase()),
                    escape(path),
                    escape(op["summary"].as_str().unwrap_or(""))
                ));
                if let Some(d) = op["description"].as_str() {
                    html.push_str(&format!("<p>{}</p>", escape(d)));
                }
                html.push_str("<ul>");
                for (status, response) in op["responses"].as_object().into_iter().flatten() {
                    html.push_str(&format!(
                        "<li><code>{}</code> {}</li>",
                        escape(status),
                        escape(response["description"].as_str().unwrap_or(""))
                    ));
                }
                html.push_str("</ul></section>");
            }
        }
    }
    html.push_str("</body></html>");
    Html(html)
}
