"""The energy meters' Modbus TCP server (pymodbus): one unit id per line's meter, serving the
input and holding registers of ``registers.REGISTER_MAP``, read-only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plantwire.sim.plant import LineSpec, PlantSnapshot
from plantwire.sim.registers import REGISTER_MAP, RegisterTable, table_image

__all__ = ["MeterModbusServer"]

_TABLE_OF_FUNCTION = {3: RegisterTable.HOLDING, 4: RegisterTable.INPUT}


class MeterModbusServer:
    """Serves each line's meter as Modbus unit ``LineSpec.meter_unit``. ``publish`` replaces
    the register images; a read answers from the latest one."""

    def __init__(self, lines: Sequence[LineSpec], snapshot: PlantSnapshot, host: str, port: int):
        self._host = host
        self._port = port
        self._images: dict[int, dict[RegisterTable, list[int]]] = {}
        self.publish(snapshot)
        devices = [self._device(line.meter_unit) for line in lines]
        self._server = ModbusTcpServer(devices, address=(host, port))
        self._bound: int | None = None

    def _device(self, unit: int) -> SimDevice:
        def block(table: RegisterTable) -> list[SimData]:
            image = self._images[unit][table]
            return [SimData(0, values=image, datatype=DataType.REGISTERS, readonly=True)]

        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS, readonly=True)]

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            table = _TABLE_OF_FUNCTION.get(function_code)
            if table is not None:
                image = self._images[unit][table]
                registers[: len(image)] = image  # the block starts at address 0
            return None

        return SimDevice(
            unit,
            simdata=(bits, list(bits), block(RegisterTable.HOLDING), block(RegisterTable.INPUT)),
            action=action,
        )

    @property
    def port(self) -> int:
        return self._bound if self._bound is not None else self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"modbus+tcp://{host}:{self.port}"

    def publish(self, snapshot: PlantSnapshot) -> None:
        for meter in snapshot.meters:
            values = {k: v for k, v in asdict(meter).items() if isinstance(v, float)}
            self._images[meter.unit] = {
                table: table_image(table, values, REGISTER_MAP) for table in RegisterTable
            }

    async def start(self) -> str:
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError as error:  # pymodbus says no more than that it could not listen
            raise OSError(f"Modbus server cannot listen on {self._host}:{self._port}") from error
        listener = self._server.transport
        if isinstance(listener, asyncio.Server) and listener.sockets:
            self._bound = listener.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        await self._server.shutdown()
