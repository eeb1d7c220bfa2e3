"""Mailchimp's campaigns and their email activity reports."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.mailchimp.errors import not_found
from kommo_sync.sandbox.mailchimp.members import MemberState
from kommo_sync.sandbox.mailchimp.queries import time_arg
from kommo_sync.sandbox.mailchimp.records import Campaign
from kommo_sync.sandbox.mailchimp.rules import JSON_CONTENT_TYPE, iso, subscriber_hash
from kommo_sync.sandbox.server import Request, Response


class CampaignEndpoints(MemberState):
    """`/campaigns` and `/reports/{id}/email-activity`."""

    def _campaign_json(self, campaign: Campaign) -> dict[str, Any]:
        audience = self.audiences[campaign.list_id]
        sent = campaign.send_time <= self.clock.now()
        return {
            "id": campaign.id,
            "web_id": campaign.web_id,
            "type": "regular",
            "create_time": iso(campaign.create_time),
            "archive_url": "",
            "status": "sent" if sent else "schedule",
            "emails_sent": len(audience.members),
            "send_time": iso(campaign.send_time),
            "content_type": "template",
            "recipients": {
                "list_id": audience.id,
                "list_is_active": True,
                "list_name": audience.name,
                "segment_text": "",
                "recipient_count": len(audience.members),
            },
            "settings": {"subject_line": campaign.title, "title": campaign.title},
        }

    def _get_campaigns(self, request: Request) -> Response:
        since = time_arg(request, "since_send_time")
        before = time_arg(request, "before_send_time")
        wanted_status, list_id = request.arg("status"), request.arg("list_id")
        rows = [
            self._campaign_json(c)
            for c in self.campaigns.values()
            if (list_id is None or c.list_id == list_id)
            and (since is None or c.send_time > since)
            and (before is None or c.send_time < before)
        ]
        rows = [row for row in rows if wanted_status is None or row["status"] == wanted_status]
        return Response(
            200,
            {"campaigns": self._page(rows, request), "total_items": len(rows)},
            JSON_CONTENT_TYPE,
        )

    def _get_email_activity(self, request: Request) -> Response:
        """Every address with recorded activity; `since` filters the events, not the addresses."""
        campaign = self.campaigns.get(request.params["campaign_id"])
        if campaign is None:
            raise not_found()
        since = time_arg(request, "since")
        emails = [
            self._activity_json(campaign, email, events, since)
            for email, events in campaign.activity.items()
        ]
        return Response(
            200,
            {
                "emails": self._page(emails, request),
                "campaign_id": campaign.id,
                "total_items": len(emails),
            },
            JSON_CONTENT_TYPE,
        )

    @staticmethod
    def _activity_json(
        campaign: Campaign, email: str, events: list[dict[str, Any]], since: float | None
    ) -> dict[str, Any]:
        shown = [
            {
                "action": e["action"],
                "type": e["type"],
                "timestamp": iso(e["timestamp"]),
                "url": e["url"],
                "ip": "",
            }
            for e in events
            if since is None or e["timestamp"] > since
        ]
        return {
            "campaign_id": campaign.id,
            "list_id": campaign.list_id,
            "list_is_active": True,
            "email_id": subscriber_hash(email),
            "email_address": email,
            "activity": shown,
        }
