"""Divert sinks against real local peers, and the outbox dispatcher's dedup and retries."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.divert import (
    ACTION_CODES,
    Dispatcher,
    LogSink,
    ModbusSink,
    OpcUaSink,
    SinkError,
    WebhookSink,
    item_number,
    make_notice_sink,
    make_sink,
    verdict_events,
)
from pipeline.lots import QUARANTINE_EVENT
from pipeline.store import Store
from pipeline.types import Action, Frame, ItemCapture, Verdict


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopThread:
    """An asyncio loop in a thread, for the async peers (OPC UA, Modbus servers)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout_s: float = 15.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# -- log -----------------------------------------------------------------------------


def test_log_sink_writes_json_lines_once_per_item_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "divert.jsonl"
    sink = LogSink(path)
    sink.send("I1", Action.DIVERT, ["anomaly p=0.9"])
    sink.send("I1", Action.DIVERT, ["anomaly p=0.9"])
    sink.close()
    with path.open("a") as fh:
        fh.write('{"item_id": "I2", "act')  # a line torn by a crash
    sink = make_sink(f"log:{path}")
    sink.send("I1", Action.DIVERT, [])
    sink.send("I3", Action.PASS, [])
    sink.close()
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]
    assert [(x["item_id"], x["action"]) for x in lines] == [("I1", "divert"), ("I3", "pass")]


# -- webhook ---------------------------------------------------------------------------


@contextmanager
def webhook_peer(statuses: list[int]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Local HTTP server answering with `statuses` in turn (then 200), recording bodies."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({**body, "key": self.headers.get("Idempotency-Key")})
            self.send_response(statuses.pop(0) if statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/divert", received
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_sink_posts_json_and_raises_on_non_2xx() -> None:
    with webhook_peer([503]) as (url, received):
        sink = make_sink(url)
        assert isinstance(sink, WebhookSink)
        with pytest.raises(SinkError, match="HTTP 503"):
            sink.send("I1", Action.DIVERT, ["torn_box"])
        sink.send("I1", Action.DIVERT, ["torn_box"])
        sink.close()
    assert received[-1] == {"item_id": "I1", "action": "divert", "reasons": ["torn_box"], "key": "I1:divert"}
    dead = WebhookSink(url, timeout_s=0.5)
    with pytest.raises(SinkError, match="ConnectError"):
        dead.send("I2", Action.PASS, [])
    dead.close()


# -- OPC UA ----------------------------------------------------------------------------


async def _opcua_server(port: int) -> Any:
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/tunnelpi/")
    idx = await server.register_namespace("urn:tunnelpi:test-plc")
    line = await server.nodes.objects.add_object(idx, "Divert")
    for name in ("ItemId", "Action"):
        var = await line.add_variable(ua.NodeId(f"Divert.{name}", idx), name, "", varianttype=ua.VariantType.String)
        await var.set_writable()
    await server.start()
    return server, idx


async def _read(server: Any, idx: int) -> tuple[str, str]:
    from asyncua import ua

    item = await server.get_node(ua.NodeId("Divert.ItemId", idx)).read_value()
    action = await server.get_node(ua.NodeId("Divert.Action", idx)).read_value()
    return item, action


def test_opcua_sink_writes_nodes_and_reconnects_after_server_restart() -> None:
    peer = LoopThread()
    port = free_port()
    try:
        server, idx = peer.run(_opcua_server(port))
        url = f"opc.tcp://127.0.0.1:{port}/tunnelpi/?item_node=ns={idx};s=Divert.ItemId&action_node=ns={idx};s=Divert.Action"
        sink = make_sink({"url": url, "timeout_s": 1.0})
        assert isinstance(sink, OpcUaSink)
        sink.send("S0001-000042", Action.DIVERT, [])
        assert peer.run(_read(server, idx)) == ("S0001-000042", "divert")
        peer.run(server.stop())
        with pytest.raises(SinkError):
            sink.send("S0001-000043", Action.PASS, [])
        server, idx = peer.run(_opcua_server(port))
        sink.send("S0001-000043", Action.PASS, [])
        assert peer.run(_read(server, idx)) == ("S0001-000043", "pass")
        sink.close()
        peer.run(server.stop())
    finally:
        peer.close()


def test_opcua_url_needs_node_ids() -> None:
    with pytest.raises(ValueError, match="item_node"):
        make_sink("opc.tcp://127.0.0.1:4840")


# -- Modbus ----------------------------------------------------------------------------


async def _modbus_server(port: int, writes: list[list[int]]) -> Any:
    from pymodbus.pdu.register_message import WriteMultipleRegistersRequest
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    def trace(sending: bool, pdu: Any) -> Any:
        if not sending and isinstance(pdu, WriteMultipleRegistersRequest):
            writes.append([pdu.address, *pdu.registers])
        return pdu

    device = SimDevice(id=1, simdata=[SimData(0, count=256, values=0, datatype=DataType.REGISTERS)])
    server = ModbusTcpServer(device, address=("127.0.0.1", port), trace_pdu=trace)
    await server.serve_forever(background=True)
    return server


def test_modbus_sink_writes_item_number_and_action_in_one_request() -> None:
    from pymodbus.client import ModbusTcpClient

    peer = LoopThread()
    port = free_port()
    writes: list[list[int]] = []
    try:
        server = peer.run(_modbus_server(port, writes))
        sink = make_sink(f"modbus://127.0.0.1:{port}?unit=1&register=100")
        assert isinstance(sink, ModbusSink)
        sink.send("S0001-000042", Action.DIVERT, [])
        sink.send("S0001-000043", Action.REVIEW, [])
        reader = ModbusTcpClient("127.0.0.1", port=port)
        assert reader.connect()
        regs = reader.read_holding_registers(100, count=3, device_id=1).registers
        reader.close()
        number = item_number("S0001-000043")
        assert number == 1000043
        assert regs == [number >> 16, number & 0xFFFF, ACTION_CODES[Action.REVIEW]]
        assert writes == [[100, 0x000F, 0x426A, 2], [100, 0x000F, 0x426B, 3]]  # 1000042 = 0x000F426A
        sink.close()
        peer.run(server.shutdown())
        dead = ModbusSink("127.0.0.1", port, timeout_s=0.5)
        with pytest.raises(SinkError):
            dead.send("S1", Action.PASS, [])
        dead.close()
    finally:
        peer.close()


def test_item_number_falls_back_to_crc_for_ids_without_a_small_number() -> None:
    assert item_number("box-7") == 7
    assert item_number("abc") == item_number("abc") and 0 <= item_number("abc") < 2**32
    assert item_number("9" * 12) < 2**32


# -- outbox ----------------------------------------------------------------------------


class FlakySink:
    def __init__(self, failures: int) -> None:
        self.failures, self.sent = failures, []

    def send(self, item_id: str, action: Action, reasons: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise SinkError("PLC not answering")
        self.sent.append((item_id, action))

    def close(self) -> None:
        pass


def decide(store: Store, item_id: str, action: Action) -> None:
    store.enqueue(ItemCapture(item_id=item_id, sku="F1", frames=[Frame(camera="top", uri="x.jpg")]))
    verdict = Verdict(item_id=item_id, sku="F1", action=action, reasons=["r"])
    store.complete(verdict, verdict_events(verdict, {"lot": "L1"}))


def test_reprocessed_item_yields_one_divert_event(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    decide(store, "I1", Action.DIVERT)
    decide(store, "I1", Action.DIVERT)  # re-delivered lease processed again
    decide(store, "I2", Action.PASS)
    assert [(e.item_id, e.payload["action"]) for e in store.events("divert")] == [("I1", "divert"), ("I2", "pass")]
    assert [e.item_id for e in store.events("replacement_order")] == ["I1"]
    assert store.events("replacement_order")[0].payload["lot"] == "L1"


def test_dispatcher_retries_with_backoff_until_delivered(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    decide(store, "I1", Action.DIVERT)
    sink, orders = FlakySink(failures=2), FlakySink(failures=0)
    results: list[tuple[str, bool]] = []
    dispatcher = Dispatcher(
        store,
        {"divert": sink, "replacement_order": orders},
        base_delay_s=0.0,
        on_result=lambda t, ok, s: results.append((t, ok)),
    )
    assert dispatcher.run_once() == 1  # the replacement order; the divert failed
    assert store.events("divert")[0].attempts == 1
    dispatcher.run_once()
    assert dispatcher.run_once() == 1
    assert sink.sent == [("I1", Action.DIVERT)] and orders.sent == [("I1", Action.DIVERT)]
    assert dispatcher.run_once() == 0 and not store.pending_events()
    assert results.count(("divert", False)) == 2 and ("divert", True) in results


def test_dispatcher_backoff_delays_the_next_try(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    decide(store, "I1", Action.PASS)
    sink = FlakySink(failures=1)
    dispatcher = Dispatcher(store, {"divert": sink}, base_delay_s=60.0)
    assert dispatcher.run_once() == 0
    assert dispatcher.run_once() == 0 and sink.sent == []  # waiting out the backoff
    assert store.pending_events()[0].attempts == 1


def test_dispatcher_thread_delivers_on_wake(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    sink = FlakySink(failures=0)
    dispatcher = Dispatcher(store, {"divert": sink}, poll_s=5.0).start()
    try:
        decide(store, "I1", Action.REVIEW)
        dispatcher.wake()
        _wait(lambda: sink.sent == [("I1", Action.REVIEW)])
    finally:
        dispatcher.stop()


def _wait(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not check():
        time.sleep(0.02)
    assert check()


def test_unknown_sink_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown divert sink"):
        make_sink("ftp://plc")


# -- notices ---------------------------------------------------------------------------

QUARANTINE = {"lot": "L7", "reason": "5/9 confirmed defects", "items_in_building": ["I1", "I2"]}


def test_log_sink_writes_a_notice_once_per_key_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "quarantine.jsonl"
    sink = make_notice_sink(f"log:{path}")
    sink.publish("quarantine:L7", QUARANTINE)
    sink.close()
    sink = make_notice_sink(f"log:{path}")
    sink.publish("quarantine:L7", QUARANTINE)  # re-delivered after a crash
    sink.publish("quarantine:L8", {**QUARANTINE, "lot": "L8"})
    sink.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["lot"], x["dedup_key"], x["items_in_building"]) for x in lines] == [
        ("L7", "quarantine:L7", ["I1", "I2"]),
        ("L8", "quarantine:L8", ["I1", "I2"]),
    ]


def test_webhook_sink_posts_a_notice_with_its_key() -> None:
    with webhook_peer([500]) as (url, received):
        sink = make_notice_sink(url)
        with pytest.raises(SinkError, match="HTTP 500"):
            sink.publish("quarantine:L7", QUARANTINE)
        sink.publish("quarantine:L7", QUARANTINE)
        sink.close()
    assert received[-1] == {**QUARANTINE, "dedup_key": "quarantine:L7", "key": "quarantine:L7"}


def test_line_controller_sinks_cannot_carry_notices() -> None:
    with pytest.raises(ValueError, match="notices go to"):
        make_notice_sink("modbus://127.0.0.1:1502?unit=1&register=100")


class NoticeRecorder:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, key: str, payload: dict[str, Any]) -> None:
        self.published.append((key, payload))

    def close(self) -> None:
        pass


def test_dispatcher_publishes_quarantine_notices_beside_divert_signals(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    decide(store, "I1", Action.DIVERT)
    store.add_event(None, QUARANTINE_EVENT, {"dedup_key": "quarantine:L7", **QUARANTINE})
    signals, notices = FlakySink(failures=0), NoticeRecorder()
    dispatcher = Dispatcher(store, {"divert": signals, QUARANTINE_EVENT: notices})
    assert dispatcher.run_once() == 2
    assert signals.sent == [("I1", Action.DIVERT)]
    assert notices.published == [("quarantine:L7", {"dedup_key": "quarantine:L7", **QUARANTINE})]
