"""Online experiments on a serving alias, against a real server with the real model and pymilvus
searches on the alias name as the live traffic (nothing client-side changes but an optional
`client_request_id`).

One collection is migrated from model version 1 (field `vec`) to version 2 (field `vec2`: same
weights, other prefixes, so other vectors and other rankings). Each test puts its own serving
alias on `vec` and runs an experiment with `vec2` as the challenger:

* shadow: the champion answers; the challenger's answers, computed off the critical path, give
  overlap@10 and RBO equal to what the test computes from searching both fields directly; vector
  queries (the challenger is another space) stay with the champion; a promotion through the
  experiment is audited with the experiment as evidence, and a rollback restores the champion;
* A/B: sticky assignment by a request header or a filter template parameter, the traffic share,
  feedback on request ids (given by the client or generated and returned), and mSPRT promoting
  the challenger on its own once simulated users prefer it;
* guardrails pause (resumable) and roll back (for good) on their own;
* every refusal of the endpoints."""

import time
import uuid

import numpy as np
import pytest
from pymilvus import MilvusClient

from test_migrations import setup_collection, start, wait_for
from test_registry import call, ok

QUERIES = [
    "money in the bank", "a storm with rain", "violin music", "the city road", "sugar cells",
    "a goal in the match", "river stones", "light in the city", "a loan from the bank", "rain on the road",
    "music of the river", "stone and light", "match day storm", "sugar and money", "cell music",
    "road to the river", "city bank loan", "violin in the rain", "goal light", "stone city",
]


@pytest.fixture(scope="module")
def world(server, minilm_dir):
    model, coll, c, data = setup_collection(server, minilm_dir, 300)
    m = start(server, coll, model)
    wait_for(server, coll, m["id"], lambda st: st["state"] == "READY")
    c.load_collection(coll)
    return {"s": server, "model": model, "coll": coll, "c": c, "minilm_dir": minilm_dir}


def new_alias(w):
    alias = "ex_" + uuid.uuid4().hex[:8]
    bundle = {"collection": w["coll"], "field": "vec", "model": w["model"], "version": 1}
    ok(w["s"], "POST", "/v1/serving-aliases", {"name": alias, "bundle": bundle})
    return alias


def challenger(w, **extra):
    b = {"collection": w["coll"], "field": "vec2", "model": w["model"], "version": 2}
    b.update(extra)
    return b


def experiment(w, alias, exp_id):
    return ok(w["s"], "GET", f"/v1/serving-aliases/{alias}/experiments/{exp_id}")


def wait_exp(w, alias, exp_id, pred, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        x = experiment(w, alias, exp_id)
        if pred(x):
            return x
        time.sleep(0.1)
    raise AssertionError(f"timed out: {experiment(w, alias, exp_id)}")


def ids_of(hits):
    return [str(h["id"]) for h in hits]


def direct(w, field, q):
    return ids_of(w["c"].search(w["coll"], data=[q], anns_field=field, limit=10)[0])


def overlap(a, b, k=10):
    a, b = a[:k], b[:k]
    d = max(len(a), len(b))
    return 1.0 if d == 0 else len(set(a) & set(b)) / d


def rbo_ext(a, b, k=10, p=0.9):
    """Extrapolated rank-biased overlap (Webber et al. 2010, eq. 32), written independently."""
    k = min(k, max(len(a), len(b)))
    s = 0.0
    for d in range(1, k + 1):
        s += len(set(a[:d]) & set(b[:d])) / d * p**d
    return len(set(a[:k]) & set(b[:k])) / k * p**k + (1 - p) / p * s


def test_shadow_measures_the_challenger_off_the_critical_path_and_promotes_with_evidence(world):
    w, s, c = world, world["s"], world["c"]
    alias = new_alias(w)
    body = {"mode": "shadow", "challenger": challenger(w), "traffic": 1.0, "k": 10, "cpu_budget": 2.0,
            "reason": "v2 prefixes"}
    x = ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments", body)
    exp_id = x["id"]
    assert x["status"] == "running" and x["champion_revision"] == 1 and x["champion"]["field"] == "vec"
    # One active experiment per alias.
    assert call(s, "POST", f"/v1/serving-aliases/{alias}/experiments", body)[0] == 409

    for i, q in enumerate(QUERIES):
        got = ids_of(c.search(alias, data=[q], limit=10, client_request_id=f"shadow-{i}")[0])
        # The champion answers, exactly as a search of its field would.
        assert got == direct(w, "vec", q)
    x = wait_exp(w, alias, exp_id, lambda x: x["metrics"]["shadow"]["run"] == len(QUERIES))
    m = x["metrics"]
    assert m["arms"]["champion"]["requests"] == len(QUERIES)
    assert m["arms"]["challenger"]["requests"] == len(QUERIES)
    assert m["arms"]["champion"]["p99_ms"] > 0 and m["arms"]["challenger"]["p50_ms"] > 0
    assert m["shadow"]["dropped_budget"] == 0 and m["shadow"]["errors"] == 0

    # The server's overlap and RBO equal what the test computes from both fields directly.
    pairs = [(direct(w, "vec", q), direct(w, "vec2", q)) for q in QUERIES]
    want_ov = np.mean([overlap(a, b) for a, b in pairs])
    want_rbo = np.mean([rbo_ext(a, b) for a, b in pairs])
    assert m["compared"] == len(QUERIES)
    assert abs(m["overlap"] - want_ov) < 1e-9, (m["overlap"], want_ov)
    assert abs(m["rbo"] - want_rbo) < 1e-9, (m["rbo"], want_rbo)
    assert 0.0 < m["overlap"] < 1.0, "version 2 should rank differently"
    # The worst disagreements name the request, the query and both rankings.
    worst = m["disagreements"]
    assert worst and worst == sorted(worst, key=lambda d: (d["rbo"], d["overlap"]))
    d0 = worst[0]
    q = QUERIES[int(d0["request_id"].split("-")[1])]
    assert d0["query"] == q
    assert d0["champion"] == direct(w, "vec", q) and d0["challenger"] == direct(w, "vec2", q)
    assert abs(d0["rbo"] - min(rbo_ext(a, b) for a, b in pairs)) < 1e-9

    # A vector query cannot go to a challenger of another space: the champion answers it.
    vec = c.search(w["coll"], data=["x"], anns_field="vec", limit=1, output_fields=["vec"])[0][0]["entity"]["vec"]
    assert len(c.search(alias, data=[vec], limit=3)[0]) == 3
    x = experiment(w, alias, exp_id)
    assert x["metrics"]["incompatible"] == 1 and x["metrics"]["arms"]["champion"]["requests"] == len(QUERIES) + 1

    # Promote through the experiment: the alias's promote path, with the experiment as evidence.
    x = ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments/{exp_id}/promote", {"reason": "overlap looks sane"})
    assert x["status"] == "promoted" and x["outcome"]["revision"] == 2
    assert x["metrics"]["compared"] == len(QUERIES)  # the snapshot kept at the state change
    sa = ok(s, "GET", f"/v1/serving-aliases/{alias}")
    assert sa["revision"] == 2 and sa["bundle"]["field"] == "vec2" and sa["bundle"]["version"] == 2
    hist = ok(s, "GET", f"/v1/serving-aliases/{alias}/history")["history"]
    assert hist[-1]["kind"] == "promoted" and hist[-1]["evidence"] == [exp_id]
    # Searches on the alias now use version 2 (the text is embedded with its query prefix).
    assert ids_of(c.search(alias, data=[QUERIES[0]], limit=10)[0]) == direct(w, "vec2", QUERIES[0])
    # The ended experiment takes no more traffic and refuses changes.
    assert call(s, "POST", f"/v1/serving-aliases/{alias}/experiments/{exp_id}/pause", {})[0] == 409

    # Roll back: version 1 serves again.
    ok(s, "POST", f"/v1/serving-aliases/{alias}/rollback", {"to": "previous", "reason": "scenario"})
    assert ids_of(c.search(alias, data=[QUERIES[0]], limit=10)[0]) == direct(w, "vec", QUERIES[0])

    events = ok(s, "GET", "/v1/audit?since=0")["events"]
    mine = [e for e in events if e["subject"] in (f"experiment:{exp_id}", f"serving:{alias}")]
    kinds = [e["kind"] for e in mine]
    assert kinds == ["serving_created", "experiment_started", "serving_promoted", "experiment_updated", "serving_rolled_back"]
    assert ok(s, "GET", "/v1/audit/verify")["ok"] is True


def test_ab_is_sticky_takes_feedback_and_msprt_promotes_the_winner(world):
    w, s, c = world, world["s"], world["c"]
    alias = new_alias(w)
    body = {
        "mode": "ab", "challenger": challenger(w), "traffic": 0.5,
        "assignment": {"field": "user"},
        "decision": {"metric": "feedback_rate", "test": "msprt", "alpha": 0.05, "min_samples": 30},
        "on_success": "promote",
    }
    exp_id = ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments", body)["id"]

    def search(user, n, q):
        # The sticky key is a filter template parameter; `id != -user-1` keeps every row.
        res = c.search(alias, data=[q], limit=10, filter="id != {user}", filter_params={"user": -user - 1},
                       client_request_id=f"ab-{user}-{n}")
        return ids_of(res[0])

    def arm_of(request_id):
        # A dwell of 0 s is an event that does not convert: it tells the test the arm. A search
        # made after the experiment ended is not one of its requests (404).
        st, out = call(s, "POST", "/v1/feedback", {"request_id": request_id, "doc_id": 0, "event": "dwell", "value": 0})
        assert st in (200, 404), (st, out)
        return out["arm"] if st == 200 else None

    # Sticky: one user's searches all go to one arm, and that arm's field answers them.
    arms = {}
    for user in range(40):
        q = QUERIES[user % len(QUERIES)]
        got = [search(user, n, q) for n in range(3)]
        seen = {arm_of(f"ab-{user}-{n}") for n in range(3)}
        assert len(seen) == 1, (user, seen)
        arms[user] = seen.pop()
        assert got[0] == direct(w, "vec2" if arms[user] == "challenger" else "vec", q)
    share = sum(a == "challenger" for a in arms.values()) / len(arms)
    assert 0.25 <= share <= 0.75, share

    # Simulated users prefer the challenger (they click its answers 3x as often); mSPRT
    # notices and the challenger is promoted with the experiment as evidence.
    rng = np.random.default_rng(7)
    user, promoted = 1000, None
    while user < 3000:
        rid = f"ab-{user}-0"
        hits = search(user, 0, QUERIES[user % len(QUERIES)])
        arm = arm_of(rid)
        if arm is None:
            promoted = experiment(w, alias, exp_id)
            assert promoted["status"] != "running"
            break
        if rng.random() < (0.6 if arm == "challenger" else 0.2):
            r = ok(s, "POST", "/v1/feedback", {"request_id": rid, "doc_id": int(hits[0]), "event": "click"})
            assert r["rank"] == 1 and r["experiment"] == exp_id
        user += 1
        if user % 20 == 0:
            x = experiment(w, alias, exp_id)
            if x["status"] != "running":
                promoted = x
                break
    assert promoted is not None, "mSPRT never decided"
    assert promoted["status"] == "promoted", promoted
    o = promoted["outcome"]
    assert o["by"] == "decision" and o["winner"] == "challenger" and o["p_value"] < 0.05 and o["ratio"] >= 20
    arms_m = promoted["metrics"]["arms"]
    assert arms_m["challenger"]["feedback_rate"] > arms_m["champion"]["feedback_rate"]
    assert min(arms_m["champion"]["requests"], arms_m["challenger"]["requests"]) >= 30
    hist = ok(s, "GET", f"/v1/serving-aliases/{alias}/history")["history"]
    assert hist[-1]["kind"] == "promoted" and hist[-1]["evidence"] == [exp_id] and hist[-1]["actor"] == "experiment"
    assert ok(s, "GET", f"/v1/serving-aliases/{alias}")["bundle"]["field"] == "vec2"

    # Request ids: generated and returned when the client sends none (REST v2 header).
    import json
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{s.port}/v2/vectordb/entities/search", method="POST",
                                 data=json.dumps({"collectionName": alias, "data": ["rain"], "limit": 3}).encode())
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as r:
        assert json.loads(r.read())["code"] == 0
        assert r.headers.get("Quiver-Request-Id", "").startswith("q")


def test_guardrails_pause_and_roll_back_on_their_own(world):
    w, s, c = world, world["s"], world["c"]
    alias = new_alias(w)
    # Shadow with a guardrail the v2 rankings break: overlap must stay above 0.999.
    body = {"mode": "shadow", "challenger": challenger(w), "traffic": 1.0, "cpu_budget": 2.0,
            "guardrails": [{"metric": "overlap", "min": 0.999, "action": "pause", "min_samples": 5}]}
    exp_id = ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments", body)["id"]
    for i, q in enumerate(QUERIES):
        c.search(alias, data=[q], limit=10)
    x = wait_exp(w, alias, exp_id, lambda x: x["status"] == "paused")
    assert x["outcome"]["by"] == "guardrail" and x["outcome"]["guardrail"]["metric"] == "overlap"
    assert x["outcome"]["value"] < 0.999 and x["outcome"]["samples"] >= 5
    run = x["metrics"]["shadow"]["run"]
    # Paused: no more shadow searches; the champion still answers.
    assert len(c.search(alias, data=[QUERIES[0]], limit=5)[0]) == 5
    time.sleep(0.3)
    assert experiment(w, alias, exp_id)["metrics"]["shadow"]["run"] == run
    # Resume continues the same counters, which still break the guardrail: the next search
    # pauses it again.
    resumed = ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments/{exp_id}/resume", {})
    assert resumed["status"] == "running" and resumed["metrics"]["shadow"]["run"] == run
    c.search(alias, data=[QUERIES[1]], limit=10)
    x = wait_exp(w, alias, exp_id, lambda x: x["status"] == "paused")
    assert x["outcome"]["by"] == "guardrail" and x["updated_ms"] >= resumed["updated_ms"]
    assert ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments/{exp_id}/stop", {"reason": "done"})["status"] == "stopped"

    # A/B with a challenger collection that is dropped mid-experiment: its searches fail, users
    # still get answers (the champion's), and the error-rate guardrail rolls the experiment
    # back for good.
    model2, coll2, _, _ = setup_collection(s, w["minilm_dir"], 20)
    body = {"mode": "ab", "traffic": 1.0,
            "challenger": {"collection": coll2, "field": "vec", "model": model2, "version": 1},
            "guardrails": [{"metric": "error_rate", "max": 0.1, "action": "rollback", "min_samples": 5}]}
    exp2 = ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments", body)["id"]
    c.drop_collection(coll2)
    for q in QUERIES[:8]:
        assert ids_of(c.search(alias, data=[q], limit=10)[0]) == direct(w, "vec", q)
    x = experiment(w, alias, exp2)
    assert x["status"] == "rolled_back", x
    assert x["outcome"]["guardrail"]["metric"] == "error_rate" and x["outcome"]["value"] == 1.0
    assert x["metrics"]["arms"]["challenger"]["errors"] >= 5
    assert ok(s, "GET", f"/v1/serving-aliases/{alias}")["revision"] == 1
    assert call(s, "POST", f"/v1/serving-aliases/{alias}/experiments/{exp2}/resume", {})[0] == 409
    listed = ok(s, "GET", f"/v1/serving-aliases/{alias}/experiments")["experiments"]
    assert [e["id"] for e in listed] == [exp_id, exp2] and [e["status"] for e in listed] == ["stopped", "rolled_back"]


def test_experiment_and_feedback_refusals(world):
    w, s = world, world["s"]
    alias = new_alias(w)
    path = f"/v1/serving-aliases/{alias}/experiments"
    good = {"mode": "ab", "challenger": challenger(w)}
    for bad, code in [
        ({**good, "mode": "canary"}, 400),
        ({"mode": "ab"}, 400),
        ({**good, "traffic": 1.5}, 400),
        ({**good, "challenger": {"collection": w["coll"], "field": "vec", "model": w["model"], "version": 1}}, 400),
        ({**good, "challenger": challenger(w, field="text")}, 400),
        ({**good, "challenger": challenger(w, collection="nope_" + uuid.uuid4().hex[:6])}, 404),
        ({**good, "assignment": {"cookie": "x"}}, 400),
        ({**good, "guardrails": [{"metric": "cpu", "max": 1, "action": "pause"}]}, 400),
        ({**good, "guardrails": [{"metric": "error_rate", "action": "pause"}]}, 400),
        ({**good, "guardrails": [{"metric": "error_rate", "max": 1, "action": "explode"}]}, 400),
        ({**good, "decision": {"metric": "feedback_rate", "test": "ttest"}}, 400),
        ({**good, "decision": {"metric": "feedback_rate", "alpha": 1.5}}, 400),
        ({**good, "mode": "shadow", "decision": {"metric": "feedback_rate"}}, 400),
        ({**good, "on_success": "deploy"}, 400),
        ({**good, "k": 0}, 400),
    ]:
        st, out = call(s, "POST", path, bad)
        assert st == code, (bad, st, out)
        assert out["message"], out
    assert call(s, "POST", "/v1/serving-aliases/nope/experiments", good)[0] == 404
    exp_id = ok(s, "POST", path, good)["id"]
    assert call(s, "GET", f"{path}/exp-999999")[0] == 404
    assert call(s, "POST", f"{path}/{exp_id}/explode", {})[0] == 400
    # The experiment belongs to this alias only.
    other = new_alias(w)
    assert call(s, "GET", f"/v1/serving-aliases/{other}/experiments/{exp_id}")[0] == 404
    # A manual promotion of the alias ends its experiment (its champion is gone).
    sa = ok(s, "GET", f"/v1/serving-aliases/{alias}")
    ok(s, "POST", f"/v1/serving-aliases/{alias}/promote",
       {"bundle": challenger(w), "expected_revision": sa["revision"], "reason": "by hand"})
    assert experiment(w, alias, exp_id)["status"] == "stopped"

    assert call(s, "POST", "/v1/feedback", {"request_id": "never-seen", "doc_id": 1, "event": "click"})[0] == 404
    for bad in [
        {"doc_id": 1, "event": "click"},
        {"request_id": "r", "doc_id": 1},
        {"request_id": "r", "doc_id": 1, "event": "purchase"},
        {"request_id": "r", "doc_id": 1, "event": "thumb", "value": 5},
        {"request_id": "r", "doc_id": 1, "event": "dwell"},
        {"request_id": "r", "doc_id": [1], "event": "click"},
        {"request_id": "r", "doc_id": 1, "event": "click", "value": "x"},
    ]:
        st, out = call(s, "POST", "/v1/feedback", bad)
        assert st == 400, (bad, st, out)


def test_shadow_budget_drops_and_counters_survive_a_restart(own_server, minilm_dir):
    s = own_server
    model, coll, c, _ = setup_collection(s, minilm_dir, 40)
    wait_for(s, coll, start(s, coll, model)["id"], lambda st: st["state"] == "READY")
    w = {"s": s, "model": model, "coll": coll, "c": c}
    alias = new_alias(w)
    # A budget of 1/10000 of a core: after the first shadow search the bucket stays empty.
    body = {"mode": "shadow", "challenger": challenger(w), "traffic": 1.0, "cpu_budget": 0.0001}
    exp_id = ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments", body)["id"]
    for q in QUERIES:
        c.search(alias, data=[q], limit=5)
    x = wait_exp(w, alias, exp_id, lambda x: x["metrics"]["shadow"]["run"] + x["metrics"]["shadow"]["dropped_budget"]
                 + x["metrics"]["shadow"]["dropped_queue"] == len(QUERIES))
    sh = x["metrics"]["shadow"]
    assert sh["sampled"] == len(QUERIES) and sh["dropped_budget"] >= len(QUERIES) - 2 and sh["run"] >= 1, sh
    assert x["metrics"]["arms"]["champion"]["requests"] == len(QUERIES)

    # The counters are checkpointed at shutdown and restored with the running experiment.
    s.restart()
    c = MilvusClient(uri=s.uri)
    x = experiment(w, alias, exp_id)
    assert x["status"] == "running"
    assert x["metrics"]["shadow"] == sh and x["metrics"]["arms"]["champion"]["requests"] == len(QUERIES)
    c.search(alias, data=[QUERIES[0]], limit=5)
    assert experiment(w, alias, exp_id)["metrics"]["arms"]["champion"]["requests"] == len(QUERIES) + 1


@pytest.mark.parametrize("favoured", ["champion", "challenger"])
def test_ab_verdicts_that_do_not_promote_conclude(world, favoured):
    """The champion winning, or the challenger winning with on_success notify: the verdict is
    recorded (concluded, with the winner and the test's figures) and the alias stays put."""
    w, s, c = world, world["s"], world["c"]
    alias = new_alias(w)
    body = {"mode": "ab", "challenger": challenger(w), "traffic": 0.5,
            "decision": {"metric": "feedback_rate", "min_samples": 30}, "on_success": "notify"}
    exp_id = ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments", body)["id"]
    rng = np.random.default_rng(11)
    final = None
    for n in range(3000):
        rid = f"v-{favoured}-{n}"
        hits = ids_of(c.search(alias, data=[QUERIES[n % len(QUERIES)]], limit=10, client_request_id=rid)[0])
        st, out = call(s, "POST", "/v1/feedback", {"request_id": rid, "doc_id": 0, "event": "dwell", "value": 0})
        if st == 404:
            final = experiment(w, alias, exp_id)
            break
        rate = 0.6 if out["arm"] == favoured else 0.2
        if rng.random() < rate:
            ok(s, "POST", "/v1/feedback", {"request_id": rid, "doc_id": int(hits[0]), "event": "thumb", "value": 1})
    assert final is not None, "mSPRT never decided"
    assert final["status"] == "concluded", final
    o = final["outcome"]
    assert o["by"] == "decision" and o["winner"] == favoured and o["p_value"] < 0.05, o
    assert (o["difference"] > 0) == (favoured == "challenger")
    assert final["metrics"]["decision"]["verdict"] == favoured
    assert ok(s, "GET", f"/v1/serving-aliases/{alias}")["revision"] == 1


def test_rest_searches_assign_by_header_and_return_request_ids(world):
    """REST v2 searches on the alias: the assignment header travels with them, each answer
    carries the request id (generated here) that feedback then names."""
    import json
    import urllib.request

    w, s = world, world["s"]
    alias = new_alias(w)
    body = {"mode": "ab", "challenger": challenger(w), "traffic": 0.5, "assignment": {"header": "X-User"}}
    exp_id = ok(s, "POST", f"/v1/serving-aliases/{alias}/experiments", body)["id"]

    def search(user):
        req = urllib.request.Request(f"http://127.0.0.1:{s.port}/v2/vectordb/entities/search", method="POST",
                                     data=json.dumps({"collectionName": alias, "data": ["rain"], "limit": 3}).encode())
        req.add_header("Content-Type", "application/json")
        req.add_header("X-User", user)
        with urllib.request.urlopen(req) as r:
            assert json.loads(r.read())["code"] == 0
            rid = r.headers["Quiver-Request-Id"]
        out = ok(s, "POST", "/v1/feedback", {"request_id": rid, "doc_id": 0, "event": "dwell", "value": 0})
        assert out["experiment"] == exp_id
        return out["arm"]

    arms = {}
    for u in range(24):
        got = {search(f"user-{u}") for _ in range(3)}
        assert len(got) == 1, (u, got)
        arms[u] = got.pop()
    assert set(arms.values()) == {"champion", "challenger"}, arms
    x = experiment(w, alias, exp_id)
    assert x["metrics"]["arms"]["champion"]["requests"] + x["metrics"]["arms"]["challenger"]["requests"] == 72
