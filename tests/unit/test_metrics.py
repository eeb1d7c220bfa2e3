"""Issue 16, metrics without HTTP: vendor labels, this run's traffic, totals read back."""

from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from kommo_sync.metrics import RunMetrics, previous_totals, render, traffic_since


def test_this_runs_traffic_is_by_vendor_label_with_a_zero_for_no_429():
    before = Counter({("Kommo", "requests"): 5})
    after = Counter(
        {
            ("Kommo", "requests"): 8,
            ("Mailchimp", "requests"): 2,
            ("Mailchimp batch archive", "requests"): 1,
        }
    )
    assert traffic_since(before, after) == {
        ("kommo", "requests"): 3,
        ("kommo", "429"): 0,
        ("mailchimp", "requests"): 3,
        ("mailchimp", "429"): 0,
    }


def test_totals_are_read_back_for_this_account_only(tmp_path):
    path = tmp_path / "m.prom"
    mine = RunMetrics("acme", 0, 1.5, {"done": 2}, 1_767_225_600, {("kommo", "requests"): 40})
    theirs = render(RunMetrics("other", 0, 1, {}, None, {("kommo", "requests"): 7}))
    path.write_text(render(mine) + theirs)
    assert previous_totals(path, "acme") == {("kommo", "requests"): 40}
    assert previous_totals(tmp_path / "missing.prom", "acme") == {}


def test_a_run_that_ended_before_counting_has_no_contact_series_and_parses():
    text = render(RunMetrics("acme", 4, 2.25, {"failed": 1}, None, {}))
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "kommo_sync_contacts_pulled" not in names and "kommo_sync_rejections" not in names
    assert "kommo_sync_last_success_timestamp_seconds" not in names
    assert 'kommo_sync_run_duration_seconds{account="acme"} 2.25' in text
    assert 'kommo_sync_last_exit_code{account="acme"} 4' in text
