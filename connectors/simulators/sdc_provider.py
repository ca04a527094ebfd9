"""Run an sdc11073 SdcProvider (a real IEEE 11073 SDC peer) on loopback for tests and the demo.

    provider = SdcTestProvider.start(VITALS_MDIB)
    provider.set_numeric("spo2", 97)
    provider.set_alert("ac.spo2.low", present=True)
    ... connect an SdcConnector to provider.xaddr ...
    provider.stop()

WS-Discovery is replaced by `NoDiscovery`: it only tells the provider which address to bind
(127.0.0.1) and never sends Hello/Bye/Probe, so nothing goes multicast.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from sdc11073.definitions_sdc import SdcV1Definitions
from sdc11073.mdib import ProviderMdib
from sdc11073.provider import SdcProvider
from sdc11073.xml_types import pm_types
from sdc11073.xml_types.dpws_types import ThisDeviceType, ThisModelType

VITALS_MDIB = Path(__file__).with_name("sdc_vitals_mdib.xml")


class NoDiscovery:
    """The part of WSDiscovery an SdcProvider uses, without any network traffic."""

    def __init__(self, address: str = "127.0.0.1"):
        self.active_address = address
        self.published: list[str] = []

    def publish_service(self, epr, types, scopes, x_addrs) -> None:
        self.published.append(epr)

    def clear_service(self, epr) -> None:
        if epr in self.published:
            self.published.remove(epr)

    def get_active_addresses(self) -> list[str]:
        return [self.active_address]


class SdcTestProvider:
    def __init__(self, provider: SdcProvider, mdib: ProviderMdib):
        self.provider, self.mdib = provider, mdib

    @classmethod
    def start(cls, mdib_path: str | Path = VITALS_MDIB, address: str = "127.0.0.1",
              serial: str = "SDC-0001") -> SdcTestProvider:
        mdib = ProviderMdib.from_mdib_file(str(mdib_path), protocol_definition=SdcV1Definitions)
        provider = SdcProvider(
            ws_discovery=NoDiscovery(address),
            this_model=ThisModelType(manufacturer="DeviceSync", manufacturer_url="https://example.invalid",
                                     model_name="SDC test monitor", model_number="1"),
            this_device=ThisDeviceType(friendly_name="SDC test monitor", firmware_version="1", serial_number=serial),
            device_mdib_container=mdib, epr=uuid.uuid4(), max_subscription_duration=30,
        )
        provider.start_all(start_rtsample_loop=False)
        return cls(provider, mdib)

    @property
    def xaddr(self) -> str:
        return self.provider.get_xaddrs()[0]

    def set_numeric(self, handle: str, value: float | None, validity: str = "Vld") -> None:
        with self.mdib.metric_state_transaction() as mgr:
            state = mgr.get_state(handle)
            if state.MetricValue is None:
                state.mk_metric_value()
            state.MetricValue.Value = None if value is None else Decimal(str(value))
            state.MetricValue.MetricQuality.Validity = pm_types.MeasurementValidity(validity)

    def set_alert(self, condition_handle: str, present: bool) -> None:
        with self.mdib.alert_state_transaction() as mgr:
            state = mgr.get_state(condition_handle)
            state.Presence = present
            state.ActivationState = pm_types.AlertActivation.ON

    def stop(self) -> None:
        self.provider.stop_all(send_subscription_end=False)
