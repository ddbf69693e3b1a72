#!/usr/bin/env python3
"""The official Genesys Python SDK (PureCloudPlatformClientV2) against the simulator.

Not part of CI (it needs the SDK from PyPI). Run:
    python3 -m venv /tmp/sdk && /tmp/sdk/bin/pip install PureCloudPlatformClientV2
    cargo build -p genesys-sim --example serve
    /tmp/sdk/bin/python crates/genesys-sim/tests/official_sdk.py [path/to/serve]

It starts the example server, then with unmodified SDK calls: mints a client-credentials token,
reads a call and a conversation, patches attributes through both PATCH operations, runs the
analytics details query, checks an error surfaces as ApiException with the contract's code, and
creates, checks and subscribes a notification channel.
"""

import json
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import PureCloudPlatformClientV2 as gc
from PureCloudPlatformClientV2.rest import ApiException


def main():
    repo = Path(__file__).resolve().parents[3]
    serve = Path(sys.argv[1]) if len(sys.argv) > 1 else repo / "target" / "debug" / "examples" / "serve"
    server = subprocess.Popen([str(serve), "0", "1"], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        run(url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print("official SDK: all checks passed")


def run(url):
    with urllib.request.urlopen(f"{url}/__sim/calls") as response:
        calls = json.load(response)
    live = next(c for c in calls if not c["ended"])
    conversation_id = live["conversation"]["id"]
    customer = next(p for p in live["conversation"]["participants"] if p["purpose"] == "customer")

    gc.configuration.host = url
    client = gc.api_client.ApiClient(host=url).get_client_credentials_token(
        "attrsync-demo", "attrsync-demo-secret"
    )
    api = gc.ConversationsApi(client)

    call = api.get_conversations_call(conversation_id)
    assert call.id == conversation_id, call.id
    assert any(p.purpose == "agent" and p.state == "connected" for p in call.participants)
    assert all(p.start_time is not None for p in call.participants), "timestamps parse"

    body = gc.ParticipantAttributes()
    body.attributes = {"campaign": "spring", "tier": "gold"}
    accepted = api.patch_conversations_call_participant_attributes(conversation_id, customer["id"], body)
    assert accepted.attributes["campaign"] == "spring", accepted

    clear = gc.ParticipantAttributes()
    clear.attributes = {"tier": ""}
    api.patch_conversation_participant_attributes(conversation_id, customer["id"], clear)

    conversation = api.get_conversation(conversation_id)
    participant = next(p for p in conversation.participants if p.id == customer["id"])
    assert participant.attributes == {**customer["attributes"], "campaign": "spring", "tier": ""}, participant.attributes
    assert participant.calls[0].state == "connected"
    assert conversation.end_time is None

    analytics = gc.AnalyticsApi(client)
    query = gc.ConversationQuery()
    now = datetime.now(timezone.utc)
    query.interval = f"{(now - timedelta(days=1)).isoformat()[:23]}Z/{(now + timedelta(days=1)).isoformat()[:23]}Z"
    predicate = gc.ConversationDetailQueryPredicate()
    predicate.type = "dimension"
    predicate.dimension = "conversationEnd"
    predicate.operator = "notExists"
    conversation_filter = gc.ConversationDetailQueryFilter()
    conversation_filter.type = "and"
    conversation_filter.predicates = [predicate]
    query.conversation_filters = [conversation_filter]
    paging = gc.PagingSpec()
    paging.page_size = 10
    paging.page_number = 1
    query.paging = paging
    result = analytics.post_analytics_conversations_details_query(query)
    assert result.total_hits == sum(1 for c in calls if not c["ended"]), result.total_hits
    assert len(result.conversations) == 10
    assert result.conversations[0].participants[0].sessions[0].media_type == "voice"

    try:
        api.get_conversations_call("00000000-0000-4000-8000-000000000000")
        raise AssertionError("expected a 404")
    except ApiException as error:
        assert error.status == 404, error.status
        assert json.loads(error.body)["code"] == "conversation.error.conversation.not.found"

    notifications(url, client, live["queue_id"])


def notifications(url, client, queue_id):
    """Channels and subscriptions of the Notification API (the socket needs a WebSocket client,
    which the SDK does not have: the Rust tests cover it)."""
    api = gc.NotificationsApi(client)
    channel = api.post_notifications_channels()
    assert channel.connect_uri == f"{url.replace('http://', 'ws://')}/channels/{channel.id}", channel.connect_uri
    assert channel.expires is not None, "expires parses as a datetime"
    api.head_notifications_channel(channel.id)

    topic = gc.ChannelTopic()
    topic.id = f"v2.routing.queues.{queue_id}.conversations.calls"
    unknown = gc.ChannelTopic()
    unknown.id = "v2.routing.queues.00000000-0000-4000-8000-000000000000.conversations.calls"
    try:
        api.post_notifications_channel_subscriptions(channel.id, [topic, unknown])
        raise AssertionError("expected a 403")
    except ApiException as error:
        assert error.status == 403, error.status
    listing = api.post_notifications_channel_subscriptions(channel.id, [topic, unknown], ignore_errors=True)
    states = {t.id: t.state for t in listing.entities}
    assert states == {topic.id: "Permitted", unknown.id: "Rejected"}, states
    listing = api.put_notifications_channel_subscriptions(channel.id, [topic])
    assert [t.id for t in listing.entities] == [topic.id]
    assert [t.id for t in api.get_notifications_channel_subscriptions(channel.id).entities] == [topic.id]
    api.delete_notifications_channel_subscriptions(channel.id)
    assert api.get_notifications_channel_subscriptions(channel.id).entities == []

    request = urllib.request.Request(f"{url}/__sim/channels/expire", method="POST")
    urllib.request.urlopen(request).close()
    try:
        api.head_notifications_channel(channel.id)
        raise AssertionError("expected a 404")
    except ApiException as error:
        assert error.status == 404, error.status


if __name__ == "__main__":
    main()
