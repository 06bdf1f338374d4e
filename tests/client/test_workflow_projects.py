"""td.workflow.projects, workflows, schedules and secrets against the emulator; hostile archives."""

from __future__ import annotations

import gzip
import io
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp import web

import aiotd
from aiotd import errors
from aiotd.testing import Emulator
from tests.client._workflow_support import SIMPLE_DIG, client, emulator, write_project
from tests.client.conftest import KEY, Scripted, reply


@pytest.fixture
async def emu():
    async with emulator() as emulated:
        yield emulated


@pytest.fixture
async def td(emu: Emulator):
    async with client(emu) as connected:
        yield connected


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def outside(root: Path, dest: Path) -> list[Path]:
    """Every path under ``root`` that is neither ``dest`` nor inside it."""
    return sorted(p for p in root.rglob("*") if dest not in p.parents and p != dest)


def project_dir(tmp_path: Path) -> Path:
    return write_project(
        tmp_path / "src",
        {
            "main.dig": SIMPLE_DIG,
            "other.dig": "+x:\n  echo>: x\n",
            "queries/q.sql": "select 1",
            ".secret_notes": "not pushed",
            ".git/config": "not pushed",
            "build/out.txt": "ignored",
            "keep.txt": "kept",
            ".digdagignore": "build/\n",
        },
    )


async def test_push_skips_dot_files_and_ignored_paths_and_round_trips(
    td: aiotd.Client, tmp_path: Path
) -> None:
    pushed = await td.workflow.projects.push("demo", project_dir(tmp_path))
    assert pushed.name == "demo"
    assert pushed.revision  # a fresh UUID
    dest = tmp_path / "out"
    await td.workflow.projects.download(pushed.id, dest)
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["keep.txt", "main.dig", "other.dig", "queries/q.sql"]
    assert (dest / "main.dig").read_text() == SIMPLE_DIG


async def test_download_without_extract_saves_the_archive(td: aiotd.Client, tmp_path: Path) -> None:
    pushed = await td.workflow.projects.push("demo", {"main.dig": SIMPLE_DIG, "a/b.txt": b"\x00b"})
    target = await td.workflow.projects.download(
        pushed.id, tmp_path / "p.tar.gz", extract=False, revision=pushed.revision
    )
    with tarfile.open(target) as tar:
        assert sorted(tar.getnames()) == ["a/b.txt", "main.dig"]
        member = tar.extractfile("a/b.txt")
        assert member is not None
        assert member.read() == b"\x00b"
    assert names_in(tmp_path) == ["p.tar.gz"]  # no temporary file left


async def test_download_replaces_a_project_only_with_overwrite_and_never_merges(
    td: aiotd.Client, tmp_path: Path
) -> None:
    first = await td.workflow.projects.push("demo", {"main.dig": SIMPLE_DIG, "old.sql": "1"})
    dest = tmp_path / "out"
    dest.mkdir()  # an empty directory is taken as it is
    assert await td.workflow.projects.download(first.id, dest) == dest
    await td.workflow.projects.push("demo", {"main.dig": SIMPLE_DIG, "new.sql": "2"})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        await td.workflow.projects.download(first.id, dest)
    assert names_in(dest) == ["main.dig", "old.sql"]
    await td.workflow.projects.download(first.id, dest, overwrite=True)
    assert names_in(dest) == ["main.dig", "new.sql"]  # the old project replaced as a whole
    assert names_in(tmp_path) == ["out"]  # no temporary directory, no old copy left


async def test_download_without_extract_replaces_a_file_only_with_overwrite(
    td: aiotd.Client, tmp_path: Path
) -> None:
    pushed = await td.workflow.projects.push("demo", {"main.dig": SIMPLE_DIG})
    target = tmp_path / "p.tar.gz"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        await td.workflow.projects.download(pushed.id, target, extract=False)
    assert target.read_bytes() == b"precious"
    await td.workflow.projects.download(pushed.id, target, extract=False, overwrite=True)
    with tarfile.open(target) as tar:
        assert tar.getnames() == ["main.dig"]
    assert names_in(tmp_path) == ["p.tar.gz"]


@pytest.mark.parametrize("extract", [True, False])
async def test_download_refuses_a_dest_of_the_wrong_kind(
    td: aiotd.Client, tmp_path: Path, extract: bool
) -> None:
    pushed = await td.workflow.projects.push("demo", {"main.dig": SIMPLE_DIG})
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("dir")
    wrong = ["file", "link"] if extract else ["dir"]
    for name in wrong:
        with pytest.raises(ValueError, match="directory"):
            await td.workflow.projects.download(
                pushed.id, tmp_path / name, extract=extract, overwrite=True
            )
    with pytest.raises(ValueError, match="does not exist"):
        await td.workflow.projects.download(pushed.id, tmp_path / "no" / "dest", extract=extract)
    assert names_in(tmp_path) == ["dir", "file", "link"]


async def test_list_get_get_by_name_revisions_workflows_delete(td: aiotd.Client) -> None:
    first = await td.workflow.projects.push("alpha", {"main.dig": SIMPLE_DIG}, revision="r1")
    await td.workflow.projects.push("alpha", {"main.dig": SIMPLE_DIG, "b.dig": "+b:\n  echo>: b\n"})
    beta = await td.workflow.projects.push("beta", {"main.dig": SIMPLE_DIG})
    names = [p.name async for p in td.workflow.projects.list()]
    assert names == ["alpha", "beta"]
    assert [p.name async for p in td.workflow.projects.list(page_size=1)] == ["alpha", "beta"]
    assert [p.name for p in await td.workflow.projects.list(name_pattern="bet")] == ["beta"]
    assert (await td.workflow.projects.get(beta.id)).name == "beta"
    assert (await td.workflow.projects.get_by_name("alpha")).id == first.id
    with pytest.raises(errors.NotFound):
        await td.workflow.projects.get_by_name("nope")

    revisions = await td.workflow.projects.revisions(first.id)
    assert len(revisions) == 2
    assert revisions[-1].revision == "r1"
    latest = await td.workflow.projects.workflows(first.id)
    assert sorted(w.name for w in latest) == ["b", "main"]
    old = await td.workflow.projects.workflows(first.id, revision="r1")
    assert [w.name for w in old] == ["main"]
    main = await td.workflow.projects.workflow(first.id, "main")
    assert main.project.name == "alpha"
    assert main.id != old[0].id
    assert (await td.workflow.workflows.get(old[0].id)).revision == "r1"

    deleted = await td.workflow.projects.delete(beta.id)
    assert deleted.name == "beta"
    with pytest.raises(errors.NotFound):
        await td.workflow.projects.get(beta.id)


async def test_push_retried_after_a_lost_answer_is_one_revision(
    td: aiotd.Client, emu: Emulator
) -> None:
    emu.faults.drop("PUT /api/projects", count=1)
    pushed = await td.workflow.projects.push("demo", {"main.dig": SIMPLE_DIG})
    assert emu.counters["PUT /api/projects"] == 2
    assert [r.revision for r in await td.workflow.projects.revisions(pushed.id)] == [
        pushed.revision
    ]


async def test_push_reusing_a_revision_with_other_content_is_a_conflict(td: aiotd.Client) -> None:
    await td.workflow.projects.push("demo", {"main.dig": SIMPLE_DIG}, revision="v1")
    # the same bytes under the same name are the same push
    again = await td.workflow.projects.push(
        "demo", {"main.dig": SIMPLE_DIG}, revision="v1", max_size=1 << 20
    )
    assert again.revision == "v1"
    with pytest.raises(errors.Conflict):
        await td.workflow.projects.push(
            "demo", {"main.dig": "+other:\n  echo>: 1\n"}, revision="v1"
        )


async def test_push_refuses_what_the_server_would_refuse(td: aiotd.Client, tmp_path: Path) -> None:
    with pytest.raises(errors.ArchiveError):
        await td.workflow.projects.push("demo", {"main.dig": "x" * 5000}, max_size=1000)
    with pytest.raises(errors.BadRequest):  # a name starting with a digit
        await td.workflow.projects.push("1demo", {"main.dig": SIMPLE_DIG})
    with pytest.raises(ValueError, match="name"):
        await td.workflow.projects.push("", {"main.dig": SIMPLE_DIG})


async def test_workflows_listing_and_session_time(td: aiotd.Client) -> None:
    for name in ("p1", "p2", "p3"):
        await td.workflow.projects.push(name, {"main.dig": SIMPLE_DIG, "etl.dig": SIMPLE_DIG})
    ascending = [w.id async for w in td.workflow.workflows.list(page_size=2)]
    assert len(ascending) == 6
    assert ascending == sorted(ascending, key=int)
    descending = [w.id async for w in td.workflow.workflows.list(order="desc", page_size=4)]
    assert descending == ascending[::-1]
    assert len(await td.workflow.workflows.list(name_pattern="etl")) == 3
    found = await td.workflow.workflows.list(name_pattern="p2", search_project_name=True)
    assert {w.project.name for w in found} == {"p2"}
    truncated = await td.workflow.workflows.truncated_session_time(
        ascending[0], session_time="2024-05-06T07:08:09+00:00", mode="day"
    )
    assert truncated.session_time == "2024-05-06T00:00:00+00:00"


DAILY = 'timezone: UTC\nschedule:\n  daily>: "07:00:00"\n+t:\n  echo>: daily\n'


async def test_schedules_list_get_disable_enable_skip_backfill(td: aiotd.Client) -> None:
    now = datetime.now(timezone.utc)
    project = await td.workflow.projects.push("sched", {"daily.dig": DAILY}, schedule_from=now)
    schedules = [s async for s in td.workflow.schedules.list()]
    assert len(schedules) == 1
    schedule = schedules[0]
    assert [s.id async for s in td.workflow.projects.schedules(project.id)] == [schedule.id]
    assert await td.workflow.projects.schedules(project.id, workflow="other") == []
    got = await td.workflow.schedules.get(schedule.id)
    assert got.workflow.name == "daily"

    disabled = await td.workflow.schedules.disable(schedule.id)
    assert disabled.disabled_at is not None
    enabled = await td.workflow.schedules.enable(schedule.id)
    assert enabled.disabled_at is None

    past = now - timedelta(days=3)
    dry = await td.workflow.schedules.backfill(schedule.id, from_time=past, count=2, dry_run=True)
    assert [a.id for a in dry.attempts] == ["0", "0"]
    ran = await td.workflow.schedules.backfill(
        schedule.id, from_time=past, count=2, attempt_name="bf1"
    )
    assert [a.retry_attempt_name for a in ran.attempts] == ["bf1", "bf1"]
    with pytest.raises(errors.Conflict):
        await td.workflow.schedules.backfill(
            schedule.id, from_time=past, count=2, attempt_name="bf1"
        )

    before = await td.workflow.schedules.get(schedule.id)
    skipped = await td.workflow.schedules.skip(
        schedule.id, from_time=str(before.next_run_time), count=3
    )
    assert str(skipped.next_schedule_time) > str(before.next_schedule_time)
    with pytest.raises(errors.Conflict):  # not after the current next time
        await td.workflow.schedules.skip(schedule.id, next_time=past)
    with pytest.raises(ValueError, match="next_time"):
        await td.workflow.schedules.skip(schedule.id, count=2)


async def test_secrets_put_list_delete(td: aiotd.Client) -> None:
    project = await td.workflow.projects.push("vault", {"main.dig": SIMPLE_DIG})
    secrets = td.workflow.secrets
    stored = await secrets.put(project.id, "td.apikey", value="s3cret")
    assert stored.key == "td.apikey"
    assert stored.project is not None
    await secrets.put_many(project.id, {"db.password": "pw", "db.user": "me"})
    assert await secrets.list(project.id) == ["db.password", "db.user", "td.apikey"]
    assert await td.workflow.projects.secrets(project.id) == ["db.password", "db.user", "td.apikey"]
    await secrets.delete(project.id, "db.user")
    await secrets.delete(project.id, "db.user")  # deleting a gone key is not an error
    assert await secrets.list(project.id) == ["db.password", "td.apikey"]
    with pytest.raises(errors.BadRequest):
        await secrets.put(project.id, "bad key!", value="x")


async def test_secret_keys_are_a_pager_like_every_list(td: aiotd.Client, emu: Emulator) -> None:
    project = await td.workflow.projects.push("keys", {"main.dig": SIMPLE_DIG})
    await td.workflow.secrets.put_many(project.id, {"a.b": "1", "c": "2"})
    before = emu.counters["GET /api/projects/{id}/secrets"]
    assert [key async for key in td.workflow.secrets.list(project.id)] == ["a.b", "c"]
    assert [key async for key in td.workflow.projects.secrets(project.id)] == ["a.b", "c"]
    assert await td.workflow.secrets.list(project.id).all() == ["a.b", "c"]
    # one page each: the endpoint has no paging, so no second request looks for more
    assert emu.counters["GET /api/projects/{id}/secrets"] - before == 3


# -- hostile archives, served as TD would serve them


def tar_gz(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


HOSTILE = {
    "parent": tar_gz(regular("ok.dig", b"fine"), regular("../x", b"escaped")),
    "absolute": tar_gz(regular("/abs", b"escaped")),
    "symlink": tar_gz(symlink("etc", "/etc"), regular("etc/passwd", b"escaped")),
    "bomb": tar_gz(regular("zeros.bin", bytes(8 << 20))),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_download_refuses_hostile_archives(
    scripted: Scripted, tmp_path: Path, kind: str
) -> None:
    scripted.on("/api/projects/7/archive", reply(200, HOSTILE[kind]))
    dest = tmp_path / "work" / "dest"
    dest.parent.mkdir()
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        with pytest.raises(errors.ArchiveError):
            await td.workflow.projects.download(7, dest, max_total_size=1 << 20)
    # nothing beside dest, not even the temporary file; `../x` did not land in tmp_path
    assert outside(tmp_path, dest) == [tmp_path / "work"]
    # and nothing in dest: the members extracted before the refusal were never moved there
    assert not dest.exists()


@pytest.mark.parametrize("extract", [True, False])
async def test_an_empty_archive_is_an_archive_error(
    scripted: Scripted, tmp_path: Path, extract: bool
) -> None:
    scripted.on("/api/projects/7/archive", reply(200, b""))
    dest = tmp_path / "work" / ("dest" if extract else "p.tar.gz")
    dest.parent.mkdir()
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        with pytest.raises(errors.ArchiveError, match="project 7: the archive is empty"):
            await td.workflow.projects.download(7, dest, extract=extract)
    assert outside(tmp_path, dest) == [tmp_path / "work"]
    assert not dest.exists()


async def test_download_follows_a_redirect_without_the_key(
    scripted: Scripted, tmp_path: Path
) -> None:
    archive = tar_gz(regular("main.dig", b"+t:\n  echo>: t\n"))
    # `localhost` is another origin than 127.0.0.1: the key must not follow the redirect
    storage = scripted.url.replace("127.0.0.1", "localhost") + "/storage/abc?sig=1"

    async def see_other(request: web.Request) -> web.StreamResponse:
        assert request.query.get("revision") == "r9"
        raise web.HTTPSeeOther(storage)

    scripted.on("/api/projects/7/archive", see_other)
    scripted.on("/storage/abc", reply(200, archive))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        await td.workflow.projects.download(7, tmp_path / "d", revision="r9")
    assert (tmp_path / "d" / "main.dig").read_bytes() == b"+t:\n  echo>: t\n"
    sent = dict(zip([r.path for r in scripted.seen], scripted.headers, strict=True))
    assert sent["/api/projects/7/archive"]["Authorization"] == f"TD1 {KEY}"
    assert "Authorization" not in sent["/storage/abc"]


async def test_push_sends_gzip_with_exact_length(scripted: Scripted) -> None:
    bodies: list[bytes] = []

    async def accept(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        bodies.append(body)
        assert request.headers["Content-Type"] == "application/gzip"
        assert request.headers["Content-Length"] == str(len(body))
        assert "Transfer-Encoding" not in request.headers
        assert request.query.getall("clear_schedule") == ["a", "b"]
        assert request.query["schedule_from"] == "2024-01-02T03:04:05Z"
        assert request.query["skip_schedule"] == "true"
        # a RestProject as TD answers it (samples/workflow/GET__api_projects__td-guide.json)
        return web.json_response(
            {
                "id": "5",
                "name": "demo",
                "revision": request.query["revision"],
                "createdAt": "2024-01-02T03:04:05Z",
                "updatedAt": "2024-01-02T03:04:05Z",
                "deletedAt": None,
                "archiveType": "s3",
                "archiveMd5": "AAAAAAAAAAAAAAAAAAAAAA==",
                "metadata": [],
            }
        )

    scripted.on("/api/projects", accept)
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        project = await td.workflow.projects.push(
            "demo",
            {"main.dig": SIMPLE_DIG},
            revision="r1",
            schedule_from="2024-01-02T03:04:05Z",
            clear_schedule=["a", "b"],
            skip_schedule=True,
        )
    assert project.revision == "r1"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(bodies[0]))) as tar:
        assert tar.getnames() == ["main.dig"]


async def test_version_and_version_check(td: aiotd.Client) -> None:
    assert await td.workflow.version() == "0.10.5"
    check = await td.workflow.version_check(client_version="0.10.5")
    assert check.server_version == "0.10.5"
    assert check.api_compatible is True
