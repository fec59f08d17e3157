"""The binomial checkpointing schedule (shadowad.support.revolve): every action
is carried out on a toy state (the index of the next step) that checks its
preconditions; the counts are revolve's formula, which a search over all
schedules and the recursion over split points confirm is the minimum; the
split between the recording and the sweep; streaming."""
import heapq
import itertools
import time
from functools import lru_cache
from math import comb

import pytest

from shadowad.support import revolve
from shadowad.support.revolve import Advance, Free, Restore, Reverse, Store, Tape


def run(actions, n, snapshots, at=0, stored=None, pending=None):
    """Carry out the actions on a toy state: ``at`` is the step the current
    state comes before (None once it is unknown).  Returns the tallies and the
    final toy state; every precondition of the actions' contract is asserted."""
    stored = {} if stored is None else stored
    tally = dict(advanced=0, taped=[], reversed=[], stores=0, peak=len(stored))
    last_restore = {}
    trace = list(actions)
    for k, a in enumerate(trace):
        kind = type(a)
        if kind is Advance:
            assert at == a.start < a.stop <= n, (k, a, at)
            tally["advanced"] += a.stop - a.start
            at = a.stop
        elif kind is Store:
            assert at == a.step and a.step not in stored, (k, a, at)
            stored[a.step] = at
            tally["stores"] += 1
            tally["peak"] = max(tally["peak"], len(stored))
            assert len(stored) <= snapshots, (k, a)
        elif kind is Restore:
            assert a.step in stored, (k, a)
            at = stored[a.step]
            last_restore[a.step] = k
        elif kind is Free:
            del stored[a.step]
        elif kind is Tape:
            assert pending is None and at == a.step < n, (k, a, at, pending)
            tally["taped"].append(a.step)
            pending, at = a.step, a.step + 1
        elif kind is Reverse:
            assert pending == a.step and at == a.step + 1, (k, a, at, pending)
            tally["reversed"].append(a.step)
            pending, at = None, a.step
        else:
            raise AssertionError(f"unknown action {a!r}")
    for step, k in last_restore.items():
        assert k + 1 < len(trace) and trace[k + 1] == Free(step), \
            f"snapshot {step} kept after its last Restore"
    return tally, at, stored, pending


def run_whole(n, snapshots):
    """Both parts, with the checks that hold between and after them."""
    forward = list(revolve.forward_part(n, snapshots))
    assert all(type(a) in (Store, Advance) for a in forward[:-1])
    f, at, stored, pending = run(forward, n, snapshots)
    assert f["taped"] == ([n - 1] if n else []) and f["reversed"] == []
    assert at == n, "the recording must leave the final state"
    r, at, stored, pending = run(revolve.reverse_part(n, snapshots), n, snapshots,
                                 at, stored, pending)
    assert at == 0 and stored == {} and pending is None
    assert f["taped"] + r["taped"] == r["reversed"] == list(range(n - 1, -1, -1))
    assert forward + list(revolve.reverse_part(n, snapshots)) \
        == list(revolve.schedule(n, snapshots))
    return (f["advanced"] + r["advanced"], len(r["reversed"]), f["stores"] + r["stores"],
            max(f["peak"], r["peak"]))


@pytest.mark.parametrize("snapshots", range(1, 13))
def test_counts_are_the_formula_and_the_actions_hold(snapshots):
    for n in range(61):
        advanced, taped, _, peak = run_whole(n, snapshots)
        assert (advanced, taped) == revolve.counts(n, snapshots), n
        assert peak <= snapshots


@pytest.mark.parametrize("n, snapshots", [(1000, 10), (1001, 10), (5000, 3), (4321, 7),
                                          (20000, 20), (3000, 1)])
def test_counts_large(n, snapshots):
    advanced, taped, _, peak = run_whole(n, snapshots)
    assert (advanced, taped) == revolve.counts(n, snapshots)
    assert peak == snapshots


def test_the_contract_example():
    assert revolve.counts(1000, 10) == (3636, 1000)


def test_counts_formula_corners():
    for n in range(0, 40):
        # one snapshot: step i is re-run from step 0, i untaped runs
        assert revolve.counts(n, 1) == (n * (n - 1) // 2, n)
        # a snapshot before every step but the last: each runs untaped once,
        # the last taped in the recording
        for snapshots in range(max(n - 1, 1), n + 3):
            assert revolve.counts(n, snapshots) == (max(n - 1, 0), n)


def test_repetitions_is_the_smallest():
    for snapshots in range(1, 8):
        for n in range(0, 300):
            r = revolve.repetitions(n, snapshots)
            assert comb(snapshots + r, snapshots) >= n
            assert r == 0 or comb(snapshots + r - 1, snapshots) < n


def fewest_untaped(n, snapshots):
    """The minimum over every schedule, by a shortest-path search: the state
    is (current step, steps left to reverse, stored steps); advancing one step
    costs 1, storing, freeing, restoring and taping-then-reversing the last
    step left cost nothing."""
    start = (0, n, frozenset())
    best = {start: 0}
    queue = [(0, start)]
    while queue:
        cost, node = heapq.heappop(queue)
        if cost > best[node]:
            continue
        at, end, stored = node
        if end == 0:
            return cost
        moves = [(at, end, stored - {p}) for p in stored]
        moves += [(p, end, stored) for p in stored]
        if at not in stored and len(stored) < snapshots:
            moves.append((at, end, stored | {at}))
        if at == end - 1:
            moves.append((at, end - 1, stored))
        for move in moves:
            if best.get(move, cost + 1) > cost:
                best[move] = cost
                heapq.heappush(queue, (cost, move))
        if at < end - 1:
            move = (at + 1, end, stored)
            if best.get(move, cost + 2) > cost + 1:
                best[move] = cost + 1
                heapq.heappush(queue, (cost + 1, move))
    raise AssertionError("no schedule")


@pytest.mark.parametrize("snapshots, most", [(1, 14), (2, 14), (3, 12), (4, 10), (5, 9)])
def test_counts_are_the_minimum_over_all_schedules(snapshots, most):
    for n in range(0, most + 1):
        assert revolve.counts(n, snapshots)[0] == fewest_untaped(n, snapshots), n


@lru_cache(maxsize=None)
def best_split(steps, usable):
    """(untaped runs, stores) of the best schedule that splits at an offset m:
    advance m, store, reverse the right part with one snapshot fewer, then the
    left part; untaped runs first, then stores."""
    if steps <= 1:
        return 0, 0
    if usable == 1 or steps == 2:
        return steps * (steps - 1) // 2, 0
    candidates = []
    for m in range(1, steps - 1):
        right, left = best_split(steps - m, usable - 1), best_split(m, usable)
        candidates.append((m + right[0] + left[0], 1 + right[1] + left[1]))
    return min(candidates)


@pytest.mark.parametrize("snapshots", range(1, 13))
def test_fewest_untaped_runs_then_fewest_stores(snapshots):
    for n in range(0, 61):
        advanced, _, stores, _ = run_whole(n, snapshots)
        untaped, inner_stores = best_split(n, snapshots)
        assert advanced == untaped, n
        assert stores == inner_stores + (n >= 2), n     # + the state before step 0


def test_small_cases_need_no_snapshot_or_no_rerun():
    assert list(revolve.schedule(0, 3)) == []
    assert list(revolve.forward_part(1, 1)) == [Tape(0)]
    assert list(revolve.reverse_part(1, 1)) == [Reverse(0)]
    for n in range(2, 8):
        actions = list(revolve.schedule(n, n - 1))
        assert [a for a in actions if type(a) is Store] == [Store(i) for i in range(n - 1)]
        assert [a for a in actions if type(a) is Advance] \
            == [Advance(i, i + 1) for i in range(n - 1)]


def test_streams():
    n = 10 ** 12
    started = time.perf_counter()
    forward = list(revolve.forward_part(n, 20))
    head = list(itertools.islice(revolve.reverse_part(n, 20), 50))
    assert time.perf_counter() - started < 1.0
    assert forward[-1] == Tape(n - 1) and head[0] == Reverse(n - 1)
    assert len(forward) <= 2 * 20 + 1


def test_actions_are_values():
    assert Store(3) != Restore(3) and Store(3) == Store(3)
    assert len({Tape(1), Tape(1), Reverse(1)}) == 2
    with pytest.raises(AttributeError):
        Advance(0, 1).stop = 2


@pytest.mark.parametrize("function", [revolve.schedule, revolve.forward_part,
                                      revolve.reverse_part, revolve.counts])
def test_bad_arguments(function):
    with pytest.raises(ValueError, match="steps"):
        function(-1, 3)
    with pytest.raises(ValueError, match="snapshots"):
        function(5, 0)
    with pytest.raises(TypeError):
        function(5.0, 3)
