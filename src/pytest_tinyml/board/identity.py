"""``BoardIdentity``: which board produced a figure, built once at connect from ``tinyml-info``.

It is the only place that maps the firmware's info keys (``cpu-mhz``, ``build``, ``idf``, ...) to the names
reports and the latency history use; everything downstream reads :meth:`BoardIdentity.as_dict`.
``where`` is one of :data:`WHERE`: ``device`` (a real board), ``sim`` (the host simulator), ``host`` (the
host runtime), ``estimate`` (an estimate without running).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

WHERE = ("device", "sim", "host", "estimate")


def chip_name(text) -> str:
    """A chip as boards report it (``tinyml-info`` ``chip``): ``"ESP32-S3"`` and ``"esp32s3"`` both name ``esp32s3``.

    The one spelling rule for a target, a ``kind=`` and a reported chip, so that one spelling never matches a
    board while another falls back to something else.

    Example:
        >>> chip_name("ESP32-S3"), chip_name("host-sim")
        ('esp32s3', 'hostsim')
    """
    return str(text).lower().replace("-", "")

# BoardIdentity field -> tinyml-info key (PROTOCOL.md, tinyml-info%)
_INFO_KEYS = {"chip": "chip", "revision": "revision", "cpu_mhz": "cpu-mhz", "firmware_hash": "build",
              "idf_version": "idf", "tflm_version": "tflm", "esp_nn_version": "esp-nn", "build_flags": "cflags"}


@dataclass(frozen=True)
class BoardIdentity:
    """Chip, clock, firmware and library versions of one connected board, and ``where`` it runs.

    Example:
        >>> ident = BoardIdentity.from_info({"chip": "esp32s3", "cpu-mhz": "240", "build": "3f9c2e1d0a7b"},
        ...                                 where="device")
        >>> ident.cpu_mhz, ident.as_dict()["firmware_hash"], ident.where
        (240, '3f9c2e1d0a7b', 'device')
    """

    chip: str | None = None
    revision: str | None = None
    cpu_mhz: int | None = None
    firmware_hash: str | None = None
    idf_version: str | None = None
    tflm_version: str | None = None
    esp_nn_version: str | None = None
    build_flags: str | None = None
    where: str = "device"

    def __post_init__(self) -> None:
        if self.where not in WHERE:
            raise ValueError(f"where={self.where!r} is not one of {', '.join(WHERE)}")

    @classmethod
    def from_info(cls, info: dict, *, where: str) -> BoardIdentity:
        """From the ``tinyml-info`` keys (strings, as the board sends them)."""
        values = {name: info.get(key) or None for name, key in _INFO_KEYS.items()}
        mhz = values.pop("cpu_mhz")
        try:
            cpu_mhz = int(float(mhz)) if mhz is not None else None
        except ValueError:
            cpu_mhz = None
        return cls(**values, cpu_mhz=cpu_mhz, where=where)

    def as_dict(self) -> dict:
        """The keys every record and report uses: chip, revision, cpu_mhz, firmware_hash, idf_version,
        tflm_version, esp_nn_version, build_flags, where (None where the board did not say).

        Example:
            >>> sorted(BoardIdentity(chip="host-sim", where="sim").as_dict())[:3]
            ['build_flags', 'chip', 'cpu_mhz']
        """
        return asdict(self)
