"""``serve --cluster``: this engine's membership of the cluster (docs/scaling.md).

Three threads, each with one job:

- **leases** (every ``RENEW_EVERY_S``): heartbeat, renew the leases held, then follow the fair
  share (``workflow.cluster.share_plan``): take free or expired partitions (``Partitioning.gain``:
  rewind, resume from their checkpoints) and hand extras back to a member that joined (stop
  owning them, let what was taken finish, store their checkpoints and free the leases in one
  transaction). One change at a time: a hand-over or a takeover in progress waits for its end.
- **fence** (every 0.2 s): a renewal that has not succeeded by ``sent + TTL - FENCE_MARGIN_S``
  (this machine's monotonic clock, from when the renewal was *sent*) drops every partition at
  once, before the lease can expire in the database and another member start on it.
- **changes** (every ``CHANGES_EVERY_S``): rule, flow and reference changes made through another
  member's API (the ``cluster_changes`` table) are applied here with the listeners this
  engine's own ``Services`` call (``app.changes.ChangeFanout``); ours are written there.

Workflow Machine commands for a process another member owns are forwarded to that member's API
(``app.clusterforward``), from the management API and from the HTTP doors alike. ``MngGetStats`` gains ``cluster``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from brokerflow.app.changes import Change, ChangeFanout
from brokerflow.app.clusterforward import Forwarder
from brokerflow.app.extension import EngineParts, Extension
from brokerflow.app.partitioning import Partitioning
from brokerflow.bus._throttle import LogThrottle, held_note
from brokerflow.errors import BadRequest
from brokerflow.settings import Settings
from brokerflow.workflow.cluster import share_plan

if TYPE_CHECKING:
    from brokerflow.api.services import Services
    from brokerflow.storage.store import Store

__all__ = ["ClusterLink", "check_cluster_settings", "check_cluster_store"]

log = logging.getLogger("brokerflow.cluster")

RENEW_EVERY_S = 1.0
FENCE_MARGIN_S = 1.5  # stop owning this long before the lease could expire in the database
MIN_LEASE_TTL_S = 5.0  # renewal + margin + 2.5 s for a slow round (a takeover reads checkpoints on this thread)
FENCE_CHECK_S = 0.2
CHANGES_EVERY_S = 0.5
HANDOVER_WAIT_S = 5.0  # what was taken of a partition handed back has this long to finish
CHANGES_KEPT_MS = 3_600_000
PARTITIONS_KEY = "cluster:partitions"  # changes older than an hour are trimmed (every member applied them long ago)


def check_cluster_settings(settings: Settings) -> None:
    """``--cluster`` needs PostgreSQL, one process per member, and a lease that outlives a renewal."""
    if not settings.db_url.startswith(("postgres://", "postgresql://", "postgresext://", "postgresqlext://")):
        raise BadRequest("serve --cluster needs a PostgreSQL --db (postgresql://...): the members share their "
                         f"partitions through it; got {settings.db_url.split(':', 1)[0]}",
                         details=[{"path": "db", "message": "PostgreSQL required for --cluster"}])
    if settings.shards > 1 or settings.shard_count > 1:
        raise BadRequest("serve --cluster and --shards cannot be combined in this release: run one cluster "
                         "member per process (several on one machine if you like, each with its own endpoints)",
                         details=[{"path": "shards", "message": "not with --cluster"}])
    if settings.lease_ttl_s < MIN_LEASE_TTL_S:
        raise BadRequest(f"--lease-ttl-s must be at least {MIN_LEASE_TTL_S:.0f} s (leases are renewed every "
                         f"{RENEW_EVERY_S:.0f} s and a member stops owning {FENCE_MARGIN_S} s before its lease "
                         f"ends: a shorter lease fences on any slow round)",
                         details=[{"path": "lease_ttl_s", "message": "too short"}])


def check_cluster_store(settings: Settings, store: Store) -> int:
    """Every member must cut the customers into the same partitions: the first one records its
    ``--partitions``; a member started with another count is refused before anything starts.

    Returns the newest change's id, read before the engine loads rules and reference data:
    the member applies every change after it (one made while it loads is applied again).
    """
    stored = store.meta.set_default(PARTITIONS_KEY, str(settings.partitions))
    if stored != str(settings.partitions):
        raise BadRequest(f"this cluster's database was set up with --partitions {stored}; this member was "
                         f"started with {settings.partitions}: every member must use the same",
                         details=[{"path": "partitions", "message": f"must be {stored}"}])
    return store.cluster.last_change()


@dataclass
class Handover:
    """Partitions being handed back: no longer owned here, their leases still held until done."""

    partitions: frozenset[int]
    marks: dict[str, int]  # watermarks before they were given up: their final checkpoints
    positions: dict[str, int]  # every event taken below these must be stored first
    deadline: float = 0.0
    ran: frozenset[int] = frozenset()  # of them, those owned here when given up: only they get checkpoints


@dataclass
class Membership:
    """What the lease thread last learnt (read by stats and the forwarder)."""

    members: list[dict[str, Any]] = field(default_factory=list)
    owners: dict[int, str] = field(default_factory=dict)


class ClusterLink(Extension):
    """This engine's membership of the cluster: leases, fencing, changes, forwarding, stats."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # the lease state below, between the lease and fence threads
        self.leased: set[int] = set()  # leases held in the database (owned, being taken over or handed back)
        self.deadline = 0.0  # monotonic: past it without a renewal, stop owning everything
        self.generation = 0  # bumped by a fence: a lease round that began before it is void
        self.handover: Handover | None = None
        self.gaining: tuple[frozenset[int], Future] | None = None
        self.view = Membership()
        self.fenced = 0
        self.taken_over = 0
        self.handed_back = 0
        self.changes_applied = 0
        self._last_change = 0
        self._leaving = False  # stopping: leases are still renewed (the drain runs) but nothing is taken
        self._error_log = LogThrottle(10.0, 2)

    # -- hooks --------------------------------------------------------------------------------
    def after_actors_started(self, parts: EngineParts) -> None:
        if parts.partitioning is None or parts.partitioning.member is None:
            raise BadRequest("the cluster link needs an engine started with --cluster")
        self.settings: Settings = parts.settings
        self.store: Store = parts.store
        self.partitioning: Partitioning = parts.partitioning
        self.member: str = parts.partitioning.member
        self._last_change = parts.partitioning.changes_from  # what was stored before it was loaded at start
        self.ttl_ms = int(self.settings.lease_ttl_s * 1000)
        self.count = self.settings.partitions

    def after_services_built(self, services: Services) -> None:
        self.fanout = ChangeFanout(services, self._publish)
        self.forwarder = Forwarder(lambda p: p in self.partitioning.owned, self._owner_api,
                                   self.partitioning.pid_partition)
        services.api_forward = self.forwarder.forward
        services.http_forward = self.forwarder.forward  # the HTTP doors reach the owner too (api.forwarding)

    def after_started(self, api_endpoint: str) -> None:
        """The API is bound (its endpoint is what the others forward to): join and start the threads."""
        self.api = self.settings.advertise or _dialable(api_endpoint)
        self.store.cluster.heartbeat(self.member, self.api, os.getpid(), socket.gethostname())
        log.info("cluster: member %s joined (api %s, %d partitions, lease %.1f s)", self.member, self.api,
                 self.count, self.settings.lease_ttl_s)
        for name, target in (("leases", self._lease_loop), ("fence", self._fence_loop),
                             ("changes", self._changes_loop)):
            thread = threading.Thread(target=target, name=f"brokerflow-cluster-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def before_stop_input(self) -> None:
        """Take nothing more; the leases are still renewed and fenced while the engine drains."""
        self._leaving = True

    def after_drain(self) -> None:
        """Everything taken is stored and the run log flushed: hand every partition back at once."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=3)
        if hasattr(self, "forwarder"):
            self.forwarder.close()
        if not hasattr(self, "api"):
            return
        try:
            handover = self.handover
            if handover is not None:  # handed back half-way: its own final checkpoints
                self.store.cluster.release(self.member, handover.partitions, [
                    (s, p, seq) for s, seq in handover.marks.items() if seq >= 0 for p in sorted(handover.ran)])
            leased = set(self.leased) - (handover.partitions if handover is not None else frozenset())
            owned = self.partitioning.owned
            marks = self.partitioning.completion.watermarks() if self.partitioning.completion is not None else {}
            checkpoints = [(s, p, seq) for s, seq in marks.items() if seq >= 0 for p in sorted(owned & leased)]
            self.store.cluster.release(self.member, leased, checkpoints)
            self.store.cluster.leave(self.member)
            log.info("cluster: member %s left; %d partition(s) handed back", self.member, len(leased))
        except Exception:  # noqa: BLE001 - the leases expire by themselves within the TTL
            log.exception("cluster: leaving the cluster failed; the leases expire within %.0f s",
                          self.settings.lease_ttl_s)

    def stats(self) -> dict[str, Any]:
        view, owned = self.view, self.partitioning.owned if hasattr(self, "partitioning") else frozenset()
        counts: dict[str, int] = {}
        for owner in view.owners.values():
            counts[owner] = counts.get(owner, 0) + 1
        members = [{"member": m["member"], "api": m["api"], "host": m["host"], "pid": m["pid"],
                    "heartbeat_age_ms": m["age_ms"], "partitions": counts.get(m["member"], 0)}
                   for m in view.members]
        return {"cluster": {"member": getattr(self, "member", None), "members": members,
                            "partitions_owned": len(owned), "partitions": sorted(owned),
                            "taken_over": self.taken_over, "handed_back": self.handed_back, "fenced": self.fenced,
                            "changes_applied": self.changes_applied, "forwarded": getattr(
                                getattr(self, "forwarder", None), "forwarded", 0)}}

    # -- leases -------------------------------------------------------------------------------
    def _lease_loop(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self._lease_round()
                except Exception as exc:  # noqa: BLE001 - the database may be away; the fence watches the time
                    held = self._error_log.ready()
                    if held is not None:
                        log.error("cluster: lease round failed (%s: %s)%s", type(exc).__name__,
                                  str(exc).strip()[:200], held_note(held))
                    self._reconnect()
                self._stop.wait(max(0.05, RENEW_EVERY_S - (time.monotonic() - started)))
        finally:
            self.store.close()  # this thread's connection

    def _lease_round(self) -> None:
        cluster = self.store.cluster
        with self._lock:
            generation, held = self.generation, set(self.leased)
        sent = time.monotonic()
        cluster.heartbeat(self.member, self.api, os.getpid(), socket.gethostname())
        renewed = cluster.renew(self.member, held, self.ttl_ms)
        with self._lock:
            if generation != self.generation:
                return  # fenced meanwhile: what was held is gone
            self.deadline = sent + self.settings.lease_ttl_s - FENCE_MARGIN_S
            lost = held - renewed
            if lost:
                self._drop(lost, f"{len(lost)} lease(s) could not be renewed")
        if self._leaving:
            return
        self.view = Membership(cluster.members(self.ttl_ms), cluster.owners())
        if self._release_untracked():
            return  # the view above still shows those leases as ours: plan again next round
        if self._finish_handover():
            return  # the view above still shows those leases as ours: plan again next round
        if self.gaining is not None:
            if not self.gaining[1].done():
                return  # the takeover is not in the router yet: one change at a time
            self.gaining = None
        if self.handover is not None:
            return
        plan = share_plan(self.member, [m["member"] for m in self.view.members], self.view.owners, self.count)
        with self._lock:
            release = frozenset(plan.release) & self.leased
        if release:
            self._start_handover(release)
        elif plan.acquire:
            self._acquire(plan.acquire, generation)

    def _acquire(self, wanted: tuple[int, ...], generation: int) -> None:
        won = self.store.cluster.acquire(self.member, wanted, self.ttl_ms)
        if not won:
            return
        gained = frozenset(won)
        with self._lock:  # never a database call under the lock: the fence thread must never wait on one
            void = generation != self.generation
            if not void:
                self.leased |= gained
        if void:  # fenced while asking: give them back untouched
            self._give_back_untouched(gained)
            return
        try:
            checkpoints = self.store.runs.checkpoints(gained)
            applied = self.partitioning.gain(gained, checkpoints)
        except Exception:
            # Won but not taken over: held here, they would be renewed for ever and run by nobody.
            with self._lock:
                self.leased -= gained
            self._give_back_untouched(gained)
            raise
        applied.add_done_callback(lambda _fut: self._check_gained(gained))
        self.gaining = (gained, applied)
        self.taken_over += len(gained)
        log.info("cluster: member %s takes over %d partition(s) %s, resuming from their checkpoints",
                 self.member, len(gained), _ranges(gained))

    def _give_back_untouched(self, partitions: frozenset[int]) -> None:
        """Free leases of partitions nothing ran for here: no checkpoint is written for them."""
        try:
            self.store.cluster.release(self.member, partitions)
        except Exception:  # noqa: BLE001 - they expire within the TTL; the next round releases what it finds
            log.exception("cluster: %d lease(s) could not be given back; they expire within %.0f s",
                          len(partitions), self.settings.lease_ttl_s)

    def _release_untracked(self) -> bool:
        """Leases the database says are ours that this member does not hold (a renewal committed
        after the fence gave them up, a takeover that failed half-way): nothing of them ran here
        since, so they are freed without a checkpoint. True if there were any."""
        with self._lock:
            untracked = frozenset(p for p, owner in self.view.owners.items() if owner == self.member) - self.leased
        if untracked:
            log.warning("cluster: member %s holds %d lease(s) it does not run %s: giving them back", self.member,
                        len(untracked), _ranges(untracked))
            self._give_back_untouched(untracked)
        return bool(untracked)

    def _check_gained(self, gained: frozenset[int]) -> None:
        """The router owns ``gained`` now (this runs on its thread, before its next message).

        The change carried the whole owned set as it stood when the takeover was prepared: a fence
        or a loss since then is undone by it. So whatever the router owns without a lease here,
        gained or not, is given up again before any event of it runs.
        """
        with self._lock:
            stale = self.partitioning.owned - self.leased
            if stale:
                self.partitioning.lose(stale)
                log.warning("cluster: %d partition(s) lost while a takeover was on its way: given up again",
                            len(stale))

    def _start_handover(self, partitions: frozenset[int]) -> None:
        ran = partitions & self.partitioning.owned  # only these get checkpoints: the rest ran nothing here
        marks, positions = self.partitioning.lose(partitions)
        self.handover = Handover(partitions, marks, positions, time.monotonic() + HANDOVER_WAIT_S, ran)
        log.info("cluster: member %s hands back %d partition(s) %s (another member joined)", self.member,
                 len(partitions), _ranges(partitions))

    def _finish_handover(self) -> bool:
        """Free the leases of a hand-over whose events are stored (or whose wait is over); True if it did."""
        handover = self.handover
        if handover is None:
            return False
        completion = self.partitioning.completion
        done = completion is None or completion.done_below(handover.positions)
        if not done and time.monotonic() < handover.deadline:
            return False
        if not done:
            log.warning("cluster: events of the partitions handed back still in flight after %.0f s; the next "
                        "owner replays from before them", HANDOVER_WAIT_S)
        self.partitioning.wait_done({}, 0)  # flushes the run log: no checkpoint write of ours comes after
        checkpoints = [(s, p, seq) for s, seq in handover.marks.items() if seq >= 0
                       for p in sorted(handover.ran)]
        freed = self.store.cluster.release(self.member, handover.partitions, checkpoints)
        with self._lock:
            self.leased -= handover.partitions
        self.handover = None
        self.handed_back += len(freed)
        return True

    def _drop(self, partitions: set[int], why: str) -> None:
        """Stop owning ``partitions`` at once (hold ``_lock``): their leases are, or may be, gone."""
        self.leased -= partitions
        owned = self.partitioning.owned & partitions
        if owned:
            self.partitioning.lose(owned)
        if self.handover is not None and self.handover.partitions & partitions:
            self.handover = None
        self.fenced += len(partitions)
        log.error("cluster: member %s stops owning %d partition(s) %s: %s", self.member, len(partitions),
                  _ranges(partitions), why)

    def _reconnect(self) -> None:
        """After a failure, this thread's connection may be broken: the next use opens a new one."""
        try:
            self.store.close()
        except Exception:  # noqa: BLE001 - already gone
            pass

    # -- fencing ------------------------------------------------------------------------------
    def _fence_loop(self) -> None:
        while not self._stop.wait(FENCE_CHECK_S):
            try:
                with self._lock:
                    if self.leased and time.monotonic() > self.deadline:
                        self.generation += 1
                        self._drop(set(self.leased), "no lease renewal succeeded in time (database unreachable "
                                                     "or too slow)")
            except Exception:  # noqa: BLE001 - the fence must outlive any one failure; the ownership is already cut
                log.exception("cluster: fencing partitions failed part-way; checking again")

    # -- changes ------------------------------------------------------------------------------
    def _publish(self, change: Change) -> None:
        try:
            self.store.cluster.publish(self.member, change)
        except Exception:  # noqa: BLE001 - stored already; the others see it at their next start
            log.exception("cluster: a %s change could not be published to the other members", change.get("change"))

    def _changes_loop(self) -> None:
        next_trim = time.monotonic() + 60
        try:
            while not self._stop.wait(CHANGES_EVERY_S):
                try:
                    self._apply_changes()
                    if time.monotonic() > next_trim:
                        next_trim = time.monotonic() + 600
                        self.store.cluster.trim_changes(CHANGES_KEPT_MS)
                except Exception as exc:  # noqa: BLE001 - the next round asks again
                    held = self._error_log.ready()
                    if held is not None:
                        log.error("cluster: reading the other members' changes failed (%s: %s)%s",
                                  type(exc).__name__, str(exc).strip()[:200], held_note(held))
                    self._reconnect()
        finally:
            self.store.close()

    def _apply_changes(self) -> None:
        for change_id, member, change in self.store.cluster.changes_after(self._last_change):
            self._last_change = change_id
            if member == self.member:
                continue
            try:
                if change is None:
                    raise ValueError("not a JSON map")
                listeners, args = self.fanout.listeners(change)
            except (KeyError, ValueError) as exc:
                log.error("cluster: change %d from member %.64s could not be read (%s)", change_id, member, exc)
                continue
            for listener in listeners:
                try:
                    listener(*args)
                except Exception:  # noqa: BLE001 - stored already; the other listeners go on
                    log.exception("cluster: applying change %d from member %.64s failed", change_id, member)
            self.changes_applied += 1

    # -- forwarding ---------------------------------------------------------------------------
    def _owner_api(self, partition: int) -> str | None:
        view = self.view
        owner = view.owners.get(partition)
        if owner is None or owner == self.member:
            return None
        return next((m["api"] for m in view.members if m["member"] == owner), None)


def _dialable(endpoint: str) -> str:
    """A bound endpoint others can dial: a wildcard address becomes this host's name."""
    for wildcard in ("://0.0.0.0:", "://*:", "://[::]:"):
        if wildcard in endpoint:
            return endpoint.replace(wildcard, f"://{socket.gethostname()}:")
    return endpoint


def _ranges(partitions: frozenset[int] | set[int]) -> str:
    """``0-3,7`` for a log line."""
    out, ordered = [], sorted(partitions)
    start = prev = None
    for p in ordered:
        if start is None:
            start = prev = p
        elif p == prev + 1:
            prev = p
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = p
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(out)
