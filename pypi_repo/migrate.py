"""``manage_repo.py migrate``: move a single-machine install into the shared backends (issue 14).

Run on the single machine with its usual settings (the local tree and SQLite are the
*source*); ``--to-database URL`` and/or ``--to-storage s3://BUCKET/PREFIX`` are the targets.

- Database: users (password hashes as they are, so passwords keep working), tokens, grants,
  the audit log and download counts, in one target transaction. The tables are made by the
  components' own migration lists (``auth``, ``accounts``, ``downloads``). Rows are upserted
  on their natural keys (user uuid, token id, (project, user), the count key); audit records
  already present (same time, actor, action, target, address, outcome, detail) are skipped.
- Storage: every served file is put with its sha256 (``ChecksumSHA256``, the server checks
  it), then read back from the bucket and hashed again. A file already there with the same
  sha256 is skipped; other bytes under its key stop the run. The upload time (the tree's
  mtime, PEP 700 ``upload-time``) is kept as object metadata and as a row of
  ``s3_upload_times`` (what :class:`~pypi_repo.s3store.S3PackageStore` lists, keyed on the
  etag); yanks (PEP 592, with reasons) become rows of ``s3_yanks``; every project's serial
  is bumped so running nodes re-list. These rows go to the target database, or the source
  one when only storage is migrated (the database a node with that ``storage_url`` uses).

Re-running is safe: nothing is duplicated and nothing already copied is sent again.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .accounts import MIGRATIONS as ACCOUNT_MIGRATIONS, POSTGRES_MIGRATIONS as ACCOUNT_PG_MIGRATIONS
from .auth_schema import migrations_for
from .backends import BackendConfigError, SqlDatabase, open_database, open_storage
from .backends.s3 import S3BlobStore
from .backends.serials import bump_serial, ensure_schema
from .downloads import database as downloads_database
from .errors import FileNotFound, PypiRepoError
from .s3store import UPLOAD_TIME_META, YANK_MIGRATIONS
from .storage import FileEntry, PackageStore

__all__ = ["MigrationError", "MigrationReport", "migrate", "copy_database", "copy_files"]

log = logging.getLogger(__name__)
CHUNK = 1 << 20
_AUDIT_COLUMNS = "at, actor, action, target, client_addr, outcome, detail"


class MigrationError(PypiRepoError):
    """The migration cannot go on (a conflicting target row or object, a failed read-back)."""


@dataclass
class MigrationReport:
    """What a run did, in the order it was done (the CLI prints one line per entry)."""

    counts: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [f"{what}: {text}" for what, text in self.counts.items()]


def _schema(db: SqlDatabase) -> SqlDatabase:
    """The auth, accounts and downloads tables, by their own migration lists (both ends)."""
    db.migrate("auth", migrations_for(db.dialect))
    db.migrate("accounts", ACCOUNT_PG_MIGRATIONS if db.dialect == "postgresql" else ACCOUNT_MIGRATIONS)
    return downloads_database(db)


def copy_database(src: SqlDatabase, dst: SqlDatabase, report: MigrationReport) -> None:
    """Users, tokens, grants, audit log and download counts from ``src`` into ``dst``, upserted
    in one transaction (all or nothing)."""
    _schema(src)
    _schema(dst)
    known = {row[0] for row in dst.query("SELECT uuid FROM users")}
    users = src.query("SELECT id, uuid, name, password_hash, all_projects, created_at FROM users ORDER BY id")
    try:
        with dst.transaction() as tx:
            ids = {}
            for row in users:
                ids[row[0]] = tx.execute(
                    "INSERT INTO users (uuid, name, password_hash, all_projects, created_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, password_hash = excluded.password_hash, "
                    "all_projects = excluded.all_projects, created_at = excluded.created_at RETURNING id",
                    tuple(row[1:])).fetchone()[0]
            tokens = _copy_tokens(src, tx, ids)
            grants = _copy_grants(src, tx, ids)
            audit = _copy_audit(src, dst, tx)
            downloads = _copy_downloads(src, tx)
    except dst.IntegrityError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MigrationError(f"target database {dst.url}: a row conflicts with this install's ({reason}); "
                             f"nothing was written") from None
    report.counts["users"] = f"{len(users)} ({len(users) - len(known & {r[1] for r in users})} new)"
    report.counts["tokens"] = str(tokens)
    report.counts["grants"] = str(grants)
    report.counts["audit records"] = audit
    report.counts["download counts"] = str(downloads)


def _copy_tokens(src: SqlDatabase, tx, ids: dict) -> int:
    rows = src.query("SELECT id, user_id, secret_sha256, scope, projects, description, created_at, expires_at, "
                     "last_used_at FROM tokens ORDER BY created_at, id")
    for r in rows:
        tx.execute("INSERT INTO tokens (id, user_id, secret_sha256, scope, projects, description, created_at, "
                   "expires_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                   "user_id = excluded.user_id, secret_sha256 = excluded.secret_sha256, scope = excluded.scope, "
                   "projects = excluded.projects, description = excluded.description, "
                   "created_at = excluded.created_at, expires_at = excluded.expires_at, "
                   "last_used_at = excluded.last_used_at", (r[0], ids[r[1]], *r[2:]))
    return len(rows)


def _copy_grants(src: SqlDatabase, tx, ids: dict) -> int:
    rows = src.query("SELECT project, user_id, role, created_at FROM project_roles ORDER BY project, user_id")
    for r in rows:
        tx.execute("INSERT INTO project_roles (project, user_id, role, created_at) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (project, user_id) DO UPDATE SET role = excluded.role, "
                   "created_at = excluded.created_at", (r[0], ids[r[1]], r[2], r[3]))
    return len(rows)


def _copy_audit(src: SqlDatabase, dst: SqlDatabase, tx) -> str:
    """Records not in the target yet, in their original order (the audit log has no natural key:
    a record is the whole tuple)."""
    present = {tuple(r) for r in dst.query(f"SELECT {_AUDIT_COLUMNS} FROM audit_log")}
    rows = [tuple(r) for r in src.query(f"SELECT {_AUDIT_COLUMNS} FROM audit_log ORDER BY id")]
    new = [r for r in rows if r not in present]
    for r in new:
        tx.execute(f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", r)
    return f"{len(rows)} ({len(new)} new)"


def _copy_downloads(src: SqlDatabase, tx) -> int:
    """Counts upserted keeping the larger value: a re-run after nodes served downloads loses none."""
    rows = src.query("SELECT day, project, filename, client, count FROM download_counts")
    for r in rows:
        tx.execute("INSERT INTO download_counts (day, project, filename, client, count) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (day, project, filename, client) DO UPDATE SET count = CASE "
                   "WHEN download_counts.count > excluded.count THEN download_counts.count "
                   "ELSE excluded.count END", tuple(r))
    return len(rows)


def _read_back_sha256(blob: S3BlobStore, key: str) -> str:
    digest = hashlib.sha256()
    with blob.open(key) as body:
        while chunk := body.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_one(store: PackageStore, blob: S3BlobStore, entry: FileEntry, key: str) -> tuple[bool, str]:
    """Put one file unless it is there already: (copied?, the object's etag). Either way the target's
    bytes are checked against the source's sha256 (an object another tool put there, without
    our metadata, is read and hashed)."""
    digest = store.file_sha256(entry)
    try:
        info = blob.stat(key)
    except FileNotFound:
        info = None
    if info is not None:
        stored = blob.stored_sha256(key) or _read_back_sha256(blob, key)
        if stored == digest and info.size == entry.size:
            return False, info.etag
        raise MigrationError(f"{blob.url}{key} already holds other bytes (sha256 {stored}, "
                             f"here {digest}); not overwritten")
    with open(store.local_file(entry), "rb") as body:
        blob.put_file(key, body, bytes.fromhex(digest), entry.size,
                      metadata={UPLOAD_TIME_META: str(entry.mtime_ns)})
    if _read_back_sha256(blob, key) != digest:
        blob.delete(key)
        raise MigrationError(f"{blob.url}{key}: the bytes read back do not match sha256 {digest}; removed")
    return True, blob.stat(key).etag


def copy_files(store: PackageStore, blob: S3BlobStore, db: SqlDatabase, report: MigrationReport) -> None:
    """Every served file of the tree into the bucket; then, per project in one transaction, the
    upload times and yank states in ``db`` (the database the bucket's nodes use) and the
    project's serial bumped (running nodes re-list it)."""
    ensure_schema(db)
    db.migrate("s3_yanks", YANK_MIGRATIONS)
    copied = skipped = yanks = size = projects = 0
    for project, entries in store.iter_all():
        projects += 1
        etags = []
        for entry in entries:
            key = f"{entry.path.parent.name}/{entry.filename}"
            was_copied, etag = _copy_one(store, blob, entry, key)
            etags.append(etag)
            if was_copied:
                copied += 1
                size += entry.size
                log.info("copied %s%s (%d bytes, sha256 checked on read-back)", blob.url, key, entry.size)
            else:
                skipped += 1
        yanks += sum(entry.yanked is not None for entry in entries)
        with db.transaction() as tx:
            for entry, etag in zip(entries, etags):
                _record_file(tx, project, entry, etag)
            bump_serial(tx, project)
    report.counts["files"] = (f"{copied + skipped} verified by sha256 ({copied} copied, {size} bytes; "
                              f"{skipped} already there)")
    report.counts["projects"] = str(projects)
    report.counts["yanks"] = str(yanks)


def _record_file(tx, project: str, entry: FileEntry, etag: str) -> None:
    """The tree's upload time (PEP 700) and yank state (PEP 592) of one copied file."""
    tx.execute("INSERT INTO s3_upload_times (project, filename, etag, upload_ns) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (project, filename) DO UPDATE SET etag = excluded.etag, "
               "upload_ns = excluded.upload_ns", (project, entry.filename, etag, entry.mtime_ns))
    if entry.yanked is None:
        tx.execute("DELETE FROM s3_yanks WHERE project = ? AND filename = ?", (project, entry.filename))
    else:
        tx.execute("INSERT INTO s3_yanks (project, filename, reason) VALUES (?, ?, ?) ON CONFLICT "
                   "(project, filename) DO UPDATE SET reason = excluded.reason",
                   (project, entry.filename, entry.yanked))


def open_targets(to_database: str | None, to_storage: str | None, data_dir: Path,
                 packages_dir: Path) -> tuple[SqlDatabase | None, S3BlobStore | None]:
    """Open and check the targets before anything is copied: a bad URL is
    ``BackendConfigError``, an unreachable one ``BackendUnavailable`` (one line each)."""
    if not to_database and not to_storage:
        raise BackendConfigError("migrate: give --to-database URL, --to-storage s3://BUCKET/PREFIX or both")
    blob = None
    if to_storage:
        if not to_storage.strip().startswith("s3://"):
            raise BackendConfigError(f"--to-storage {to_storage!r}: expected s3://BUCKET/PREFIX")
        spool = Path(data_dir) / "s3cache" / "spool"
        spool.mkdir(parents=True, exist_ok=True)
        blob = open_storage(to_storage, packages_dir, spool_dir=spool)
        assert isinstance(blob, S3BlobStore)
        blob.check()
    db = None
    if to_database:
        db = open_database(to_database, data_dir)
        try:
            db.check()
        except BaseException:
            db.close()
            raise
    return db, blob


def migrate(source_db: SqlDatabase, source_store: PackageStore, *, target_db: SqlDatabase | None,
            target_blob: S3BlobStore | None, actor: str = "cli") -> MigrationReport:
    """Copy the database, then the files (see the module doc); audit the run on both ends."""
    if source_store.remote:
        raise MigrationError("migrate copies the local package tree: this install's storage_url is already a bucket")
    report = MigrationReport()
    started = time.monotonic()
    if target_db is not None:
        if target_db.url == source_db.url:
            raise MigrationError(f"--to-database {target_db.url} is this install's own database")
        copy_database(source_db, target_db, report)
    if target_blob is not None:
        copy_files(source_store, target_blob, target_db or source_db, report)
    detail = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    record = (time.time(), actor, "migrate", (target_blob.url if target_blob else "") or "", "local", "ok",
              f"to {target_db.url if target_db else '-'}: {detail}"[:2000])
    for db in {id(d): d for d in (source_db, target_db) if d is not None}.values():
        _schema(db)
        db.execute(f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", record)
    report.counts["took"] = f"{time.monotonic() - started:.1f} s"
    return report
