"""Calls a running memeguard through the official `openai` Python client (base_url
pointing at memeguard) and prints what it parsed as one JSON line. Run by
tests/process.rs with MEMEGUARD_BASE_URL, MEMEGUARD_API_KEY and MEMEGUARD_IMAGE_URL set."""

import json
import os

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["MEMEGUARD_BASE_URL"], api_key=os.environ["MEMEGUARD_API_KEY"], max_retries=0)

text = client.moderations.create(input="an ordinary caption")
result = text.results[0]
assert isinstance(result.flagged, bool)
assert 0.0 <= result.category_scores.hate <= 1.0
assert result.categories.hate == result.flagged

image = client.moderations.create(
    model="omni-moderation-latest",
    input=[
        {"type": "text", "text": "caption on a picture"},
        {"type": "image_url", "image_url": {"url": os.environ["MEMEGUARD_IMAGE_URL"]}},
    ],
)
pair = image.results[0]
# Our own fields come through the client's models as extra attributes.
extra = pair.model_extra or {}

bad = OpenAI(base_url=os.environ["MEMEGUARD_BASE_URL"], api_key="mg_wrong", max_retries=0)
try:
    bad.moderations.create(input="x")
    bad_key_status = None
except openai.AuthenticationError as e:
    bad_key_status = e.status_code

try:
    client.moderations.create(input=[{"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}])
    remote_url_status = None
except openai.BadRequestError as e:
    remote_url_status = e.status_code

print(json.dumps({
    "text": {"model": text.model, "flagged": result.flagged, "score": result.category_scores.hate,
             "decision_id": result.model_extra.get("decision_id")},
    "image": {"applied": pair.category_applied_input_types.hate, "decision_id": extra.get("decision_id"),
              "text_source": extra.get("text_source")},
    "bad_key_status": bad_key_status,
    "remote_url_status": remote_url_status,
}))
