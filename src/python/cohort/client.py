"""A client of a cohort node's local API (proto/api.proto), in Python.

One ZeroMQ DEALER connected to the node's ``api.endpoint`` (``ipc://PATH`` or
``tcp://HOST:PORT``); each message is one frame holding one ``ApiRequest``
(to the node) or one ``ApiMessage`` (from it). Like the C client
(src/api/client.c):

* every request gets a fresh id and waits, with a deadline, for the
  ``Response`` carrying that id; deliveries and events that arrive meanwhile
  are kept, in order, for ``recv``/``messages``/``events``/``serve``;
* heartbeats are swallowed but remembered: a client holding subscriptions,
  services, events or calls that hears nothing for ``lost_after`` seconds
  (the node sends a heartbeat every 5 s) raises ``NodeLost``; so does one
  told that the node's API closed (``cohortd`` stopping);
* ``close`` (or leaving a ``with`` block) sends ``Bye`` when the client asked
  the node to hold anything, so the node drops its state at once.

Not thread-safe: use one Client per thread (each is its own API client to the
node, with its own subscriptions).
"""

import collections
import logging
import os
import time
from dataclasses import dataclass, field

import zmq

from . import proto

_pb = proto.load()
api = _pb.api_pb2
wire = _pb.envelope_pb2

log = logging.getLogger("cohort")

Code = api.Code
_KIND_NAMES = {v: k.lower() for k, v in wire.Message.Kind.items()}
_U64 = (1 << 64) - 1

DEFAULT_TIMEOUT = 3.0  # how long the node has to answer a request (as cohortctl)
LOST_AFTER = 15.0      # nothing heard for this long while holding state: the node is gone
BYE_TIMEOUT = 1.0


class CohortError(Exception):
    """Base of the client's errors. ``code`` is a ``Code`` value or None."""

    def __init__(self, text, code=None):
        super().__init__(text)
        self.code = code
        self.text = text

    @property
    def code_name(self):
        return Code.Name(self.code) if self.code is not None else None


class NodeLost(CohortError):
    """The node cannot be reached, did not answer in time, stopped sending
    heartbeats, or said its API closed."""


class Refused(CohortError):
    """The node answered a request with a status other than OK (the text is
    the node's). ``response`` is the whole ``api.Response``."""

    def __init__(self, response):
        text = response.error or Code.Name(response.status)
        super().__init__(text, response.status)
        self.response = response


class ReplyError(CohortError):
    """A request came back with a status other than OK. ``reply`` is the
    reply ``Message`` (sender, payload, error)."""

    def __init__(self, text, code, reply):
        super().__init__(text, code)
        self.reply = reply


class NoResponders(ReplyError):
    """No node serves the service."""


class RequestTimeout(ReplyError):
    """No reply within the request's timeout."""


@dataclass
class Message:
    """A delivery: a unicast, a publish, a request to serve or a reply."""
    kind: str                 # "unicast", "request", "reply", "publish"
    sender: str               # the member it came from
    subject: str              # the topic, subject or service
    payload: bytes
    headers: dict = field(default_factory=dict)
    request_id: int = 0
    status: int = 0           # replies: a Code
    error: str = ""           # replies: text for a non-OK status

    @property
    def text(self):
        return self.payload.decode("utf-8", errors="replace")

    @classmethod
    def _from(cls, delivery):
        m = delivery.message
        return cls(kind=_KIND_NAMES.get(m.kind, str(m.kind)), sender=delivery.sender,
                   subject=m.subject, payload=bytes(m.payload),
                   headers={h.key: h.value for h in m.headers}, request_id=m.request_id,
                   status=m.status, error=m.error)


@dataclass
class Event:
    """A membership or link event: member.up, member.left, link.down, ..."""
    type: str
    node: str
    reason: str

    @classmethod
    def _from(cls, ev):
        return cls(type=ev.type, node=ev.node, reason=ev.reason)


def _payload(data):
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)


def _wire_message(subject, payload, headers=None, kind=None):
    m = wire.Message(subject=subject or "", payload=_payload(payload))
    if kind is not None:
        m.kind = kind
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for k, v in items:
        m.headers.add(key=str(k), value=str(v))
    return m


def endpoint_from_config(path):
    """The api.endpoint of a node.yaml, as cohortd resolves it (needs
    python3-yaml): empty means ipc://<node.state_dir>/api.sock; relative
    paths are relative to the file's directory."""
    import yaml  # only for this
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    base = os.path.dirname(os.path.abspath(path))
    ep = str((doc.get("api") or {}).get("endpoint") or "")
    if not ep:
        state = str((doc.get("node") or {}).get("state_dir") or "/var/lib/cohort")
        return "ipc://" + os.path.normpath(os.path.join(base, state, "api.sock"))
    if ep.startswith("ipc://") and not ep[6:].startswith(("/", "@")):
        return "ipc://" + os.path.normpath(os.path.join(base, ep[6:]))
    return ep


class Client:
    """A client of one node's local API.

    ``Client(endpoint)``, ``Client(config="node.yaml")`` (its api.endpoint),
    or ``Client()`` with ``$COHORT_API`` set. ``timeout``: seconds the node
    has to answer each request; ``lost_after``: seconds of silence after
    which a client holding state gives the node up.
    """

    def __init__(self, endpoint=None, *, config=None, timeout=DEFAULT_TIMEOUT,
                 lost_after=LOST_AFTER, context=None):
        if not endpoint and config:
            endpoint = endpoint_from_config(config)
        if not endpoint:
            endpoint = os.environ.get("COHORT_API", "")
        if not endpoint:
            raise ValueError("which node? give an endpoint (e.g. ipc:///var/lib/cohort/api.sock),"
                             " config='node.yaml', or set COHORT_API")
        self.endpoint = endpoint
        self.timeout = timeout
        self.lost_after = lost_after
        self._sock = None
        self._queue = collections.deque()  # ApiMessages received while waiting
        self._stateful = False
        self._events_on = False
        self._node_closed = None           # the reason, once the node said Closed
        self._next_id = (int(time.time() * 1000) << 16) & _U64  # stale answers never match
        if endpoint.startswith("ipc://") and not endpoint[6:].startswith("@"):
            if not os.path.exists(endpoint[6:]):
                raise NodeLost(self._unreachable("%s: no such file" % endpoint[6:]))
        self._ctx = context or zmq.Context.instance()
        sock = self._ctx.socket(zmq.DEALER)
        # No ZMQ_IMMEDIATE (as the C client): the node's last word must not
        # be dropped with the pipe.
        sock.setsockopt(zmq.LINGER, 500)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as e:
            sock.close(0)
            raise ValueError("%s: not a usable endpoint: %s" % (endpoint, e)) from e
        self._sock = sock
        self._last_heard = time.monotonic()

    # ---- life ----

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Says Bye if the node holds anything for us (waiting at most 1 s),
        then closes. Safe to call twice."""
        if self._sock is None:
            return
        try:
            if self._stateful and self._node_closed is None:
                try:
                    self._request("bye", api.Bye(), timeout=BYE_TIMEOUT)
                except CohortError:
                    pass
        finally:
            self._sock.close()
            self._sock = None

    @property
    def closed(self):
        """True once the node said its API closed (nothing more will come)."""
        return self._node_closed is not None

    def quiet(self):
        """Seconds since the node last sent anything (heartbeats included)."""
        return time.monotonic() - self._last_heard

    # ---- the wire ----

    def _unreachable(self, why):
        return "cannot reach the node at %s: is cohortd running? (%s)" % (self.endpoint, why)

    def _lost(self):
        if self._node_closed is not None:
            return NodeLost("the node at %s closed its API (cohortd is stopping)%s"
                            % (self.endpoint,
                               ": " + self._node_closed if self._node_closed else ""))
        return NodeLost("lost the node at %s: nothing heard for %.0f s (cohortd stopped or "
                        "restarted?)" % (self.endpoint, self.quiet()))

    def _read(self, timeout):
        """One ApiMessage (not a heartbeat) within timeout seconds, or None."""
        if self._sock is None:
            raise CohortError("the client is closed")
        deadline = time.monotonic() + max(timeout, 0.0)
        while self._node_closed is None:
            left = deadline - time.monotonic()
            if not self._sock.poll(max(0, int(left * 1000)), zmq.POLLIN):
                if left <= 0:
                    return None
                continue
            frames = self._sock.recv_multipart(zmq.NOBLOCK)
            self._last_heard = time.monotonic()
            msg = api.ApiMessage()
            try:
                msg.ParseFromString(frames[0])  # the node sends one frame; more is noise
            except Exception:  # google.protobuf.message.DecodeError
                continue
            kind = msg.WhichOneof("kind")
            if kind == "heartbeat" or kind is None:  # None: from a newer node
                continue
            if kind == "closed":
                self._node_closed = msg.closed.reason
                return None
            return msg
        return None

    def _request(self, op, body, timeout=None):
        """Sends one ApiRequest with op set to body; returns its Response
        (whatever its status). Raises NodeLost when no answer comes."""
        if self._sock is None:
            raise CohortError("the client is closed")
        timeout = self.timeout if timeout is None else timeout
        if op in ("subscribe", "serve", "call", "events"):
            self._stateful = True
        self._next_id = (self._next_id + 1) & _U64
        req = api.ApiRequest(id=self._next_id)
        getattr(req, op).CopyFrom(body)
        data = req.SerializeToString()
        deadline = time.monotonic() + timeout
        while True:  # queued until connected; only a full queue makes us wait
            try:
                self._sock.send(data, zmq.NOBLOCK)
                break
            except zmq.Again:
                left = deadline - time.monotonic()
                if left <= 0 or self._node_closed is not None:
                    raise NodeLost(self._unreachable(
                        "its API closed" if self._node_closed is not None
                        else "its queue stayed full")) from None
                self._sock.poll(int(min(left, 0.1) * 1000), zmq.POLLOUT)
        while True:
            msg = self._read(deadline - time.monotonic())
            if msg is None:
                if self._node_closed is not None:
                    raise NodeLost(self._unreachable("its API closed"))
                raise NodeLost(self._unreachable("no answer within %d ms" % (timeout * 1000)))
            if msg.WhichOneof("kind") == "response":
                if msg.response.id == req.id:
                    return msg.response
                continue  # a stale answer
            self._queue.append(msg)

    def _ok(self, op, body, timeout=None):
        resp = self._request(op, body, timeout)
        if resp.status != Code.OK:
            raise Refused(resp)
        return resp

    def _next(self, want, deadline):
        """The first queued or arriving ApiMessage for which want(msg) holds;
        others stay queued. deadline: a monotonic time, or None for no limit.
        Returns None at the deadline; raises NodeLost when the node is gone."""
        while True:
            for i, msg in enumerate(self._queue):
                if want(msg):
                    del self._queue[i]
                    return msg
            if self._node_closed is not None:
                raise self._lost()
            if self._stateful and self.quiet() > self.lost_after:
                raise self._lost()
            slice_ = 0.5
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                slice_ = min(slice_, left)
            msg = self._read(slice_)
            if msg is None:
                continue
            if msg.WhichOneof("kind") == "response":
                continue  # nobody waits for it
            if want(msg):
                return msg
            self._queue.append(msg)

    @staticmethod
    def _deadline(timeout):
        return None if timeout is None else time.monotonic() + timeout

    # ---- information ----

    def status(self):
        """The node's ``api.Status``: node, cluster, site, roster_serial,
        uptime_ms, peers_up/peers_total, services, subscriptions, counters,
        api (ApiStats), links."""
        return self._ok("status", api.StatusReq()).status_info

    def peers(self):
        """A list of ``api.Peer``: every other roster member and our link to it."""
        return list(self._ok("peers", api.PeersReq()).peers)

    def members(self):
        """A list of ``api.Member``: the membership view, this node included."""
        return list(self._ok("members", api.MembersReq()).members)

    def roster_push(self, roster, signature):
        """Hands a signed roster (file bytes and signature file bytes) to the
        node. Returns the ``api.RosterResult``; raises Refused (its
        ``response.roster.reason`` says why) when the node did not apply it."""
        return self._ok("roster_push", api.RosterPush(roster=_payload(roster),
                                                      signature=_payload(signature))).roster

    # ---- sending ----

    def send(self, node, subject, payload, headers=None, timeout=None):
        """Reliable unicast to NODE; its clients subscribed to SUBJECT get it.
        timeout: seconds to wait for room when the queue is full (None: the
        node's limits.send_timeout)."""
        wait_ms = int(timeout * 1000) if timeout else 0
        self._ok("send", api.Send(node=node, message=_wire_message(subject, payload, headers),
                                  timeout_ms=wait_ms),
                 timeout=self.timeout + wait_ms / 1000.0)

    def publish(self, topic, payload, headers=None):
        """Publishes to every node subscribed to TOPIC. Returns how many nodes
        it went to (0: no subscribers)."""
        return self._ok("publish", api.Publish(message=_wire_message(topic, payload,
                                                                     headers))).recipients

    def subscribe(self, pattern):
        """Deliveries (published, or sent to this node) whose subject matches
        PATTERN (``*`` one token, ``>`` the rest) come to this client."""
        self._ok("subscribe", api.Subscribe(pattern=pattern))

    def unsubscribe(self, pattern):
        self._ok("unsubscribe", api.Subscribe(pattern=pattern))

    def request(self, service, payload=b"", timeout=5.0, headers=None):
        """Requests SERVICE; returns the reply ``Message``. Raises
        NoResponders, RequestTimeout or ReplyError (the service answered an
        error), Refused (e.g. an invalid service name) or NodeLost."""
        timeout_ms = max(1, int(timeout * 1000))
        resp = self._ok("call", api.Call(service=service,
                                         message=_wire_message("", payload, headers),
                                         timeout_ms=timeout_ms))
        rid = resp.id

        def is_reply(m):
            return (m.WhichOneof("kind") == "delivery"
                    and m.delivery.message.kind == wire.Message.REPLY
                    and m.delivery.message.request_id == rid)

        # The node always answers a call (a reply, NO_RESPONDERS or TIMEOUT);
        # our own deadline only covers a node that died meanwhile.
        msg = self._next(is_reply, self._deadline(timeout + self.timeout))
        if msg is None:
            raise NodeLost("the node at %s stopped answering" % self.endpoint)
        reply = Message._from(msg.delivery)
        if reply.status == Code.NO_RESPONDERS:
            raise NoResponders("no responders for '%s'" % service, reply.status, reply)
        if reply.status == Code.TIMEOUT:
            raise RequestTimeout("timeout: no reply from '%s' within %d ms"
                                 % (service, timeout_ms), reply.status, reply)
        if reply.status != Code.OK:
            raise ReplyError("'%s' on %s answered %s: %s"
                             % (service, reply.sender, Code.Name(reply.status),
                                reply.error or "(no detail)"), reply.status, reply)
        return reply

    # ---- receiving ----

    def recv(self, timeout=None):
        """The next delivery (``Message``) or ``Event``, in arrival order;
        None when nothing came within timeout seconds (None: wait as long as
        the node lives; 0: do not wait)."""
        msg = self._next(lambda m: m.WhichOneof("kind") in ("delivery", "event"),
                         self._deadline(timeout))
        if msg is None:
            return None
        if msg.WhichOneof("kind") == "event":
            return Event._from(msg.event)
        return Message._from(msg.delivery)

    def messages(self, timeout=None, count=None):
        """Iterates over published and unicast deliveries (what subscribe
        asked for) until count of them came or timeout seconds passed."""
        deadline, got = self._deadline(timeout), 0
        kinds = (wire.Message.PUBLISH, wire.Message.UNICAST)
        while count is None or got < count:
            msg = self._next(lambda m: m.WhichOneof("kind") == "delivery"
                             and m.delivery.message.kind in kinds, deadline)
            if msg is None:
                return
            got += 1
            yield Message._from(msg.delivery)

    def events(self, timeout=None, count=None):
        """Turns events on (once) and iterates over them until count came or
        timeout seconds passed."""
        if not self._events_on:
            self._ok("events", api.EventsReq(on=True))
            self._events_on = True
        deadline, got = self._deadline(timeout), 0
        while count is None or got < count:
            msg = self._next(lambda m: m.WhichOneof("kind") == "event", deadline)
            if msg is None:
                return
            got += 1
            yield Event._from(msg.event)

    def events_off(self):
        if self._events_on:
            self._ok("events", api.EventsReq(on=False))
            self._events_on = False

    # ---- serving ----

    def add_service(self, service):
        """Requests to SERVICE now come to this client (round robin among the
        node's clients serving it) as ``Message`` of kind "request"; answer
        each with ``reply``. ``serve`` does both."""
        self._ok("serve", api.Serve(service=service))

    def remove_service(self, service):
        self._ok("unserve", api.Serve(service=service))

    def reply(self, request, payload=b"", headers=None, error=None, status=None):
        """Answers a request ``Message``. With error (text) the reply carries
        status ERROR (or the given status) and that text."""
        m = _wire_message(request.subject, payload, headers)
        if error is not None or status is not None:
            m.status = Code.ERROR if status is None else status
            m.error = error or ""
        self._ok("reply", api.Reply(node=request.sender, request_id=request.request_id,
                                    message=m))

    def next_request(self, service=None, timeout=None):
        """The next request (to SERVICE, or to any service served), or None."""
        def want(m):
            return (m.WhichOneof("kind") == "delivery"
                    and m.delivery.message.kind == wire.Message.REQUEST
                    and (service is None or m.delivery.message.subject == service))
        msg = self._next(want, self._deadline(timeout))
        return Message._from(msg.delivery) if msg is not None else None

    def serve(self, service, handler, count=None, stop=None):
        """Serves SERVICE until count requests were answered, stop (a
        threading.Event or a callable) says so, or the node is lost
        (NodeLost). handler(request: Message) returns the reply payload
        (bytes, str or None) or (payload, headers); an exception it raises
        becomes an ERROR reply carrying its text. Returns how many requests
        were answered, after serving stops (on an exception, close() ends
        it: Bye drops everything the client held)."""
        def stopped():
            if stop is None:
                return False
            return stop.is_set() if hasattr(stop, "is_set") else bool(stop())

        self.add_service(service)
        served = 0
        while (count is None or served < count) and not stopped():
            req = self.next_request(service, timeout=0.2)
            if req is None:
                continue
            headers, error = None, None
            try:
                out = handler(req)
                if isinstance(out, tuple):
                    out, headers = out
            except Exception as e:  # the requester gets it, the loop goes on
                out, error = b"", str(e) or type(e).__name__
                log.warning("serve %s: handler failed for %s: %s", service, req.sender, error)
            try:
                self.reply(req, out, headers=headers, error=error)
            except Refused as e:  # the requester gave up meanwhile
                log.warning("serve %s: reply to %s not sent: %s", service, req.sender, e)
            served += 1
        self.remove_service(service)
        return served
