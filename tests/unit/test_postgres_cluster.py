"""The throwaway cluster the Postgres tests share answers SQL on its socket."""

import psycopg


def test_the_cluster_answers_on_its_socket(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as db:
        version = db.execute("SHOW server_version_num").fetchone()
    assert version is not None and int(version[0]) >= 130000
