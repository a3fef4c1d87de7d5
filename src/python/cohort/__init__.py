"""cohort: a Python client of a cohort node's local API (proto/api.proto).

    from cohort import Client
    with Client("ipc:///var/lib/cohort/api.sock") as c:
        print(c.status().peers_up)
        c.send("plant-2", "jobs.resize", b"img-1")
        print(c.request("echo", b"hi").payload)

Needs Debian's python3-zmq and python3-protobuf; the protobuf modules are
generated from proto/ with protoc (protobuf-compiler), see cohort.proto.
Names are resolved on first use, so ``python3 -m cohort.proto`` runs without
generated code.
"""

__all__ = ["Client", "Message", "Event", "Code", "CohortError", "NodeLost", "Refused",
           "ReplyError", "NoResponders", "RequestTimeout", "endpoint_from_config"]


def __getattr__(name):
    if name in __all__:
        from . import client
        return getattr(client, name)
    raise AttributeError("module 'cohort' has no attribute %r" % name)
