"""The Python client's cases, against real cohortd nodes (alpha, beta, gamma)
that tests/cli/test_python_client.sh started. One case per run:

    python3 client_cases.py CASE

Environment: API_ALPHA, API_BETA, API_GAMMA (the nodes' api endpoints),
GAMMA_PID (a file holding gamma's pid), COHORTCTL, COHORT_SRC, and
PYTHONPATH with src/python and the generated cohort_pb. A failed assertion
raises; the traceback says what and where.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import zmq

import cohort
from cohort import client as cc

API = {n: os.environ["API_" + n.upper()] for n in ("alpha", "beta", "gamma")}
CTL = os.environ.get("COHORTCTL", "cohortctl")
SRC = os.environ.get("COHORT_SRC", ".")
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def eq(what, want, got):
    assert want == got, "%s: expected %r, got %r" % (what, want, got)


def match(what, pattern, text):
    assert re.search(pattern, text), "%s: %r does not match /%s/" % (what, text, pattern)


def raises(exc_type, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError("%s(%s) did not raise %s" % (fn.__name__, args, exc_type.__name__))


def until(fn, seconds=10.0, what="condition"):
    """Retries fn until it returns something true (interest takes a moment
    to travel between nodes)."""
    end = time.monotonic() + seconds
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError("%s: not within %.0f s (last: %r)" % (what, seconds, got))
        time.sleep(0.1)


def request_when_served(c, service, payload, **kw):
    """request() once the service's interest reached the requester's node."""
    def attempt():
        try:
            return c.request(service, payload, **kw)
        except cohort.NoResponders:
            return None
    return until(attempt, what="a responder for '%s'" % service)


def ctl(*args, stdin=None):
    return subprocess.run([CTL, *args], capture_output=True, text=True, input=stdin,
                          timeout=30)


# ---- generated code ----

@case
def generated_code_matches_the_runtime():
    from cohort import proto
    import cohort_pb
    pv, rv = proto.check_versions()
    eq("protobuf release of protoc and runtime", proto._release(pv, True),
       proto._release(rv, False))
    # generated for this run, not taken from the source tree
    assert not os.path.abspath(cohort_pb.__file__).startswith(
        os.path.abspath(os.path.join(SRC, "src"))), cohort_pb.__file__
    tracked = subprocess.run(["git", "-C", SRC, "ls-files", "src/python"], capture_output=True,
                             text=True).stdout
    assert "_pb2" not in tracked, "generated code committed: %s" % tracked
    eq("a Code", "NO_RESPONDERS", cohort.Code.Name(3))
    eq("release of protoc 3.21.12", 21, proto._release("3.21.12", True))
    eq("release of protoc 25.1", 25, proto._release("25.1", True))
    eq("release of runtime 4.21.12", 21, proto._release("4.21.12", False))


# ---- without a node, or with a fake one ----

@case
def unreachable_node_raises_node_lost():
    e = raises(cohort.NodeLost, cohort.Client, "ipc://%s/none.sock" % os.getcwd())
    match("missing socket", r"^cannot reach the node at ipc://.*/none\.sock: is cohortd "
          r"running\? \(.*none\.sock: no such file\)$", str(e))
    t0 = time.monotonic()
    with cohort.Client("tcp://127.0.0.1:1", timeout=0.5) as c:
        e = raises(cohort.NodeLost, c.status)
    match("nobody at the port", r"cannot reach the node at tcp://127\.0\.0\.1:1: is cohortd "
          r"running\? \(no answer within 500 ms\)", str(e))
    assert time.monotonic() - t0 < 3, "took %.1f s" % (time.monotonic() - t0)
    e = raises(ValueError, cohort.Client, "bogus://x")
    match("bad endpoint", "not a usable endpoint", str(e))
    os.environ.pop("COHORT_API", None)
    raises(ValueError, cohort.Client)


class FakeNode:
    """A ROUTER speaking the node's side of the API, scripted by the case."""

    def __init__(self):
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.endpoint = "ipc://%s/fake.sock" % os.getcwd()
        self.sock.bind(self.endpoint)
        self.rid = None

    def answer(self, status=cc.Code.OK, error=""):
        """Answers the next request; returns it."""
        assert self.sock.poll(3000), "no request came"
        self.rid, data = self.sock.recv_multipart()
        req = cc.api.ApiRequest.FromString(data)
        self.send(cc.api.ApiMessage(response=cc.api.Response(id=req.id, status=status,
                                                             error=error)))
        return req

    def send(self, msg):
        self.sock.send_multipart([self.rid, msg.SerializeToString()])


def _answer_in_background(fake, n=1):
    t = threading.Thread(target=lambda: [fake.answer() for _ in range(n)], daemon=True)
    t.start()
    return t


@case
def heartbeats_are_swallowed_and_silence_means_a_lost_node():
    fake = FakeNode()
    c = cohort.Client(fake.endpoint, lost_after=1.0)
    t = _answer_in_background(fake)
    c.subscribe("x.>")
    t.join()
    fake.send(cc.api.ApiMessage(heartbeat=cc.api.Heartbeat()))
    fake.send(cc.api.ApiMessage(response=cc.api.Response(id=1)))  # nobody waits: dropped
    d = cc.api.Delivery(sender="beta", message=cc.wire.Message(
        kind=cc.wire.Message.PUBLISH, subject="x.y", payload=b"after a heartbeat"))
    fake.send(cc.api.ApiMessage(delivery=d))
    got = list(c.messages(timeout=3, count=1))
    eq("deliveries", ["after a heartbeat"], [m.text for m in got])
    eq("kind and sender", ("publish", "beta"), (got[0].kind, got[0].sender))
    eq("nothing else queued (the heartbeat was swallowed)", None, c.recv(timeout=0.2))
    # heartbeats keep it alive past lost_after ...
    for _ in range(4):
        fake.send(cc.api.ApiMessage(heartbeat=cc.api.Heartbeat()))
        eq("recv", None, c.recv(timeout=0.4))
    # ... and silence does not
    t0 = time.monotonic()
    e = raises(cohort.NodeLost, lambda: list(c.messages()))
    match("lost", r"^lost the node at ipc://.*fake\.sock: nothing heard for 1 s", str(e))
    assert 0.5 < time.monotonic() - t0 < 3, "noticed after %.1f s" % (time.monotonic() - t0)
    c._sock.close(0)  # a Bye would wait for the silent fake


@case
def closed_api_is_told_at_once_and_bye_is_sent():
    fake = FakeNode()
    c = cohort.Client(fake.endpoint)
    t = _answer_in_background(fake, 2)
    c.add_service("svc")
    c.close()  # stateful: says Bye
    t.join()
    c = cohort.Client(fake.endpoint)  # a new client: answer() takes its routing id
    t = _answer_in_background(fake)
    c.subscribe("a")
    t.join()
    fake.send(cc.api.ApiMessage(closed=cc.api.Closed(reason="shutting down")))
    t0 = time.monotonic()
    e = raises(cohort.NodeLost, c.recv)
    match("closed", r"closed its API \(cohortd is stopping\): shutting down$", str(e))
    assert time.monotonic() - t0 < 1
    assert c.closed
    c.close()  # no Bye to a closed API: returns at once
    assert time.monotonic() - t0 < 1


@case
def bye_is_what_close_sends():
    fake = FakeNode()
    c = cohort.Client(fake.endpoint)
    ops = []
    t = threading.Thread(target=lambda: ops.extend(
        fake.answer().WhichOneof("op") for _ in range(3)), daemon=True)
    t.start()
    c.subscribe("a.b")
    c.publish("a.b", b"x")
    c.close()
    t.join(3)
    eq("ops the node saw", ["subscribe", "publish", "bye"], ops)
    # a client that holds nothing says no Bye
    c = cohort.Client(fake.endpoint)
    t = _answer_in_background(fake)
    c.publish("a.b", b"x")
    t.join()
    c.close()
    eq("after close", 0, fake.sock.poll(300))


# ---- against the nodes ----

@case
def status_peers_and_members_describe_the_cluster():
    with cohort.Client(API["alpha"]) as c:
        st = c.status()
        eq("node", "alpha", st.node)
        eq("cluster", "testcluster", st.cluster)
        eq("site", "hq", st.site)
        eq("peers up/total", (2, 2), (st.peers_up, st.peers_total))
        assert st.roster_serial > 0 and st.uptime_ms > 0, st
        assert st.api.requests >= 1, st.api
        peers = {p.name: p for p in c.peers()}
        eq("peers", ["beta", "gamma"], sorted(peers))
        eq("gamma", ("up", "direct", "plant"),
           (peers["gamma"].state, peers["gamma"].link, peers["gamma"].site))
        match("fingerprint", r"^[0-9a-f]{64}$", peers["beta"].fingerprint)
        members = {m.name: m for m in c.members()}
        eq("members", ["alpha", "beta", "gamma"], sorted(members))
        eq("states", {"alive"}, {m.state for m in members.values()})
    with cohort.Client(config=os.environ["CONFIG_BETA"]) as c:  # api.endpoint from node.yaml
        eq("node via config", "beta", c.status().node)


@case
def send_reaches_a_python_subscriber_on_the_other_node():
    with cohort.Client(API["alpha"]) as a, cohort.Client(API["beta"]) as b:
        b.subscribe("jobs.>")
        a.send("beta", "jobs.resize", b"hello", headers={"k": "v"})
        got = list(b.messages(timeout=10, count=1))
        eq("one delivery", 1, len(got))
        m = got[0]
        eq("delivery", ("unicast", "alpha", "jobs.resize", b"hello", {"k": "v"}),
           (m.kind, m.sender, m.subject, m.payload, m.headers))
        # from cohortctl too, and binary payloads arrive as they were
        r = ctl("send", "beta", "--subject", "jobs.ctl", "--api", API["alpha"], "-",
                stdin="line1\nline2")
        eq("cohortctl send", 0, r.returncode)
        a.send("beta", "jobs.bin", bytes(range(256)))
        got = list(b.messages(timeout=10, count=2))
        eq("payloads", [b"line1\nline2", bytes(range(256))], [m.payload for m in got])
        # a subject nobody on beta wants is dropped, not queued for us
        a.send("beta", "other.subject", b"x")
        eq("nothing more", [], list(b.messages(timeout=0.5)))


@case
def publish_reaches_subscribers_and_unsubscribe_stops_it():
    with cohort.Client(API["alpha"]) as a, cohort.Client(API["beta"]) as b, \
            cohort.Client(API["gamma"]) as g:
        b.subscribe("orders.>")
        g.subscribe("orders.*.new")
        until(lambda: a.publish("orders.eu.new", b"probe") == 2, what="publish to 2 nodes")
        eq("recipients", 2, a.publish("orders.eu.new", b"o1", headers={"n": "1"}))
        for who, c in (("beta", b), ("gamma", g)):
            got = None  # the probes come first
            for m in c.messages(timeout=10):
                if m.payload != b"probe":
                    got = m
                    break
            assert got, "%s got no orders.eu.new" % who
            eq(who, ("publish", "alpha", "orders.eu.new", b"o1", {"n": "1"}),
               (got.kind, got.sender, got.subject, got.payload, got.headers))
        b.unsubscribe("orders.>")
        g.unsubscribe("orders.*.new")
        until(lambda: a.publish("orders.eu.new", b"o2") == 0, what="no subscribers left")
        eq("alpha with no subscribers", 0, a.publish("nobody.listens", b"x"))
        st = b.status()
        assert "orders.>" not in list(st.subscriptions), st.subscriptions


def _python_service(api, service, ready, stop, result):
    def handler(req):
        if req.payload == b"fail":
            raise RuntimeError("asked to fail")
        if req.payload == b"slow":
            time.sleep(1.5)
        return req.payload.upper(), dict(req.headers, served_by="python")
    try:
        with cohort.Client(api) as s:
            s.add_service(service)  # serve() adds it again: harmless
            ready.set()
            result.append(s.serve(service, handler, stop=stop))
    except Exception as e:  # reported by the case
        result.append(e)
        ready.set()


@case
def request_to_a_service_served_by_python():
    ready, stop, result = threading.Event(), threading.Event(), []
    t = threading.Thread(target=_python_service,
                         args=(API["gamma"], "py.upper", ready, stop, result), daemon=True)
    t.start()
    assert ready.wait(5), "the service did not start"
    with cohort.Client(API["alpha"]) as a:
        r = request_when_served(a, "py.upper", b"hi there", headers={"trace": "t1"})
        eq("reply", ("reply", "gamma", b"HI THERE"), (r.kind, r.sender, r.payload))
        eq("headers", {"trace": "t1", "served_by": "python"}, r.headers)
        e = raises(cohort.ReplyError, a.request, "py.upper", b"fail")
        eq("error code", "ERROR", e.code_name)
        match("error", r"^'py\.upper' on gamma answered ERROR: asked to fail$", str(e))
        e = raises(cohort.RequestTimeout, a.request, "py.upper", b"slow", timeout=0.5)
        match("timeout", r"no reply from 'py\.upper' within 500 ms", str(e))
        # cohortctl asks the Python service too
        r = ctl("req", "py.upper", "from cohortctl", "--api", API["beta"])
        eq("cohortctl req", (0, "FROM COHORTCTL\n"), (r.returncode, r.stdout))
    stop.set()
    t.join(5)
    assert not t.is_alive(), "serve did not stop"
    assert not isinstance(result[0], Exception), result
    eq("requests served", 4, result[0])  # hi there, fail, slow (too late), from cohortctl


@case
def request_to_cohortctl_serve_echo():
    srv = subprocess.Popen([CTL, "serve", "echo.ctl", "--echo", "--api", API["gamma"]],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        match("serve", "serving 'echo.ctl'", srv.stderr.readline())
        with cohort.Client(API["alpha"]) as a:
            r = request_when_served(a, "echo.ctl", b"ping", headers={"h": "1"})
            eq("echo", ("gamma", b"ping", {"h": "1"}), (r.sender, r.payload, r.headers))
            t0 = time.monotonic()
            e = raises(cohort.NoResponders, a.request, "nobody.home", b"x")
            eq("code", "NO_RESPONDERS", e.code_name)
            assert time.monotonic() - t0 < 2, "no responders took %.1f s" % (
                time.monotonic() - t0)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(5)


@case
def example_echo_serves_and_says_bye():
    env = dict(os.environ)
    ex = subprocess.Popen([sys.executable, os.path.join(SRC, "src/python/examples/echo.py"),
                           "--api", API["beta"], "--service", "py.example"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        match("example", r"^serving 'py\.example' on the node at ipc://",
              ex.stdout.readline())
        with cohort.Client(API["alpha"]) as a:
            r = request_when_served(a, "py.example", "héllo")
            eq("reply", "héllo", r.text)
        eq("example's line", "py.example alpha: héllo\n", ex.stdout.readline())
        r = ctl("req", "py.example", "via cohortctl", "--api", API["gamma"])
        eq("cohortctl req", (0, "via cohortctl\n"), (r.returncode, r.stdout))
        with cohort.Client(API["beta"]) as b:
            assert "py.example" in list(b.status().services)
            ex.send_signal(signal.SIGTERM)
            eq("exit code", 0, ex.wait(5))
            # Bye: beta drops the service at once, no heartbeat needed
            eq("beta's services", [], [s for s in b.status().services if s == "py.example"])
    finally:
        if ex.poll() is None:
            ex.kill()
            ex.wait()


@case
def bad_requests_get_the_nodes_error():
    with cohort.Client(API["alpha"]) as a:
        e = raises(cohort.Refused, a.subscribe, "bad pattern")
        eq("code", "INVALID", e.code_name)
        match("text", r"^pattern 'bad pattern' must be dot-separated tokens", str(e))
        e = raises(cohort.Refused, a.send, "zeta", "x", b"hi")
        eq("code", "UNKNOWN_NODE", e.code_name)
        eq("text", "unknown node 'zeta': not a member of the roster", str(e))
        e = raises(cohort.Refused, a.publish, "bad topic", b"x")
        match("publish", r"^topic 'bad topic' must be dot-separated", str(e))
        e = raises(cohort.Refused, a.request, "bad service", b"x")
        eq("call code", "INVALID", e.code_name)
        e = raises(cohort.Refused, a.add_service, "wild.*")
        match("serve", r"^service 'wild\.\*' must be dot-separated tokens without wildcards",
              str(e))
        fake = cohort.Message(kind="request", sender="beta", subject="svc", payload=b"",
                              request_id=12345)
        e = raises(cohort.Refused, a.reply, fake, b"x")
        match("reply", r"^no request 12345 from 'beta' is waiting for this client$", str(e))
        # the client still works after refusals
        eq("status", "alpha", a.status().node)
    # a request with no operation, on a bare DEALER
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(API["alpha"])
    s.send(cc.api.ApiRequest(id=42).SerializeToString())
    assert s.poll(3000), "no answer to a request without an operation"
    m = cc.api.ApiMessage.FromString(s.recv())
    eq("answer", (42, cc.Code.INVALID, "request has no operation this node knows"),
       (m.response.id, m.response.status, m.response.error))
    s.close()


@case
def events_see_a_member_leave_and_clients_of_a_stopped_node_are_told():
    with cohort.Client(API["alpha"]) as a, cohort.Client(API["gamma"]) as g:
        g.subscribe("x.>")
        # a generator runs only when iterated: turn events on before the kill
        list(a.events(timeout=0.2))
        events = a.events(timeout=15)
        eq("nothing yet", None, a.recv(timeout=0.2))
        with open(os.environ["GAMMA_PID"]) as f:
            os.kill(int(f.read()), signal.SIGTERM)
        seen = []
        for ev in events:
            seen.append(ev)
            if ev.type == "member.left":
                break
        eq("last event", cohort.Event("member.left", "gamma", "left"), seen[-1] if seen else None)
        t0 = time.monotonic()
        e = raises(cohort.NodeLost, lambda: list(g.messages(timeout=10)))
        match("gamma's client", r"closed its API \(cohortd is stopping\)", str(e))
        assert time.monotonic() - t0 < 5
        st = a.status()
        eq("peers up", (1, 2), (st.peers_up, st.peers_total))
        members = {m.name: m.state for m in a.members()}
        eq("gamma's state", "left", members["gamma"])


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: client_cases.py CASE\ncases: " + " ".join(CASES), file=sys.stderr)
        sys.exit(2)
    CASES[sys.argv[1]]()
