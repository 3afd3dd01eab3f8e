"""Firmware freshness: build ids from sources, stale boards under --tinyml-skip-flash, missing ESP-IDF."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from board_pty_peer import PtyPeer, ScriptedFirmware

from pytest_tinyml.board import flash
from pytest_tinyml.board.connect import open_board
from pytest_tinyml.errors import FirmwareError
from pytest_tinyml.options import parse_board


@pytest.fixture
def firmware_dir(tmp_path):
    root = tmp_path / "fw"
    (root / "main").mkdir(parents=True)
    (root / "main" / "app_main.cc").write_text("int app_main(void) { return 0; }\n")
    (root / "CMakeLists.txt").write_text("project(tinyml-bench)\n")
    (root / "host").mkdir()
    (root / "host" / "main.c").write_text("int main(void) { return 0; }\n")
    real = flash.locate_firmware_dir()
    (root / "tools").mkdir()
    shutil.copy(real / "tools" / "targets.py", root / "tools" / "targets.py")  # the board configurations
    shutil.copytree(real / "boards", root / "boards")
    return root


def test_build_id_follows_the_image_sources_only(firmware_dir):
    first = flash.device_build_id(firmware_dir)
    (firmware_dir / "host" / "main.c").write_text("int main(void) { return 1; }\n")  # not in the image
    (firmware_dir / "README.md").write_text("docs\n")
    (firmware_dir / "build").mkdir()
    (firmware_dir / "build" / "app.bin").write_bytes(b"\0" * 16)  # build output
    assert flash.device_build_id(firmware_dir) == first
    (firmware_dir / "main" / "app_main.cc").write_text("int app_main(void) { return 2; }\n")
    assert flash.device_build_id(firmware_dir) != first


def test_missing_firmware_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FirmwareError, match=r"--tinyml-firmware-dir .*no such directory"):
        flash.locate_firmware_dir(str(tmp_path / "nope"))


def test_missing_esp_idf_says_how_to_install_or_skip(monkeypatch, firmware_dir, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("IDF_PATH", raising=False)
    with pytest.raises(FirmwareError) as info:
        flash.build(firmware_dir, "esp32s3", tmp_path / "cache", flash.device_build_id(firmware_dir))
    text = str(info.value)
    assert "ESP-IDF not found" in text and "export.sh" in text and "--tinyml-skip-flash" in text


def test_check_current_compares_build_ids():
    assert flash.check_current("3f9c2e1d0a7b", "3f9c2e1d0a7b55aa", port="p", skip_flash=True) is False
    assert flash.check_current("0000aaaa0000", "3f9c2e1d0a7b55aa", port="p", skip_flash=False) is True
    assert flash.check_current(None, "3f9c2e1d0a7b55aa", port="p", skip_flash=False) is True
    with pytest.raises(FirmwareError, match=r"firmware on p is stale: it reports build hash 0000aaaa0000.*--tinyml-skip-flash"):
        flash.check_current("0000aaaa0000", "3f9c2e1d0a7b55aa", port="p", skip_flash=True)


def test_current_board_is_used_without_flashing(firmware_dir, tmp_path):
    build = flash.device_build_id(firmware_dir)
    with PtyPeer(ScriptedFirmware(build=build)) as peer:
        board = open_board(parse_board(peer.port), timeout=2, skip_flash=False, firmware_dir=str(firmware_dir),
                           cache_dir=str(tmp_path / "cache"))
        with board:
            assert board.info["build"] == build
        assert not (tmp_path / "cache" / "firmware").exists()  # nothing was built


def test_stale_board_under_skip_flash_fails(firmware_dir, tmp_path):
    with PtyPeer(ScriptedFirmware(build="0123456789ab")) as peer:
        with pytest.raises(FirmwareError) as info:
            open_board(parse_board(peer.port), timeout=2, skip_flash=True, firmware_dir=str(firmware_dir),
                       cache_dir=str(tmp_path / "cache"))
        assert "is stale: it reports build hash 0123456789ab" in str(info.value)
        build = flash.device_build_id(firmware_dir)
        assert f"by hand: `idf.py -C {firmware_dir} -DTINYML_BUILD_ID={build} build flash`" in str(info.value)
        from pytest_tinyml.board.transport import open_port

        open_port(peer.port, 921600).close()  # the failed open closed the port again


def test_stale_board_is_reflashed_which_needs_esp_idf(monkeypatch, firmware_dir, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("IDF_PATH", raising=False)
    with PtyPeer(ScriptedFirmware(build="0123456789ab")) as peer:
        with pytest.raises(FirmwareError, match="ESP-IDF not found.*--tinyml-skip-flash"):
            open_board(parse_board(peer.port), timeout=2, skip_flash=False, firmware_dir=str(firmware_dir),
                       cache_dir=str(tmp_path / "cache"))


def test_sim_without_a_c_compiler_says_so(monkeypatch, tmp_path):
    from pytest_tinyml.board import sim

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(FirmwareError, match=r"no C compiler found \(gcc or cc\).*apt install gcc"):
        sim.build_host(flash.locate_firmware_dir(), tmp_path / "cache")


def test_sim_needs_the_host_program_sources(firmware_dir, tmp_path):
    from pytest_tinyml.board import sim

    (firmware_dir / "host" / "main.c").unlink()
    with pytest.raises(FirmwareError, match="has no host program sources"):
        sim.build_host(firmware_dir, tmp_path / "cache")


def test_flash_failure_is_a_firmware_error_with_the_fix(tmp_path):
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    (build_dir / "flasher_args.json").write_text(
        '{"flash_files": {"0x0": "bootloader.bin"}, "flash_settings": {"flash_mode": "dio"}}')
    (build_dir / "bootloader.bin").write_bytes(b"\xe9" + bytes(31))
    with pytest.raises(FirmwareError, match=r"flashing /dev/ttyTINYML-nope with esptool failed.*--tinyml-skip-flash"):
        flash.flash("/dev/ttyTINYML-nope", flash.FirmwareBuild("esp32", build_dir, "ab" * 8))


def test_a_build_without_flasher_args_says_rebuild(tmp_path):
    with pytest.raises(FirmwareError, match="flasher_args.json is missing or unreadable.*rebuild"):
        flash.FirmwareBuild("esp32", tmp_path, "ab" * 8).flash_files()


def test_target_values_are_the_firmware_board_configs():
    """--tinyml-target accepts exactly tools/targets.py's configurations, and its help names each of them."""
    from pytest_tinyml import firmware_tools, options

    names = firmware_tools.board_config_names()
    assert {"esp32", "esp32-psram", "esp32c3-usb"} <= set(names)
    for name in names:
        assert options._target(name) == name
    help_text = next(o for o in options._OPTIONS if o[0] == "--tinyml-target")[4]
    assert [n for n in names if n in help_text.replace(",", " ").replace(":", " ").replace("(", " ").split()] == list(names)
    with pytest.raises(Exception, match="unknown target 'esp32s2'.*esp32c3-usb"):
        options._target("esp32s2")


def test_build_uses_the_board_config_and_the_id_cmake_wrote(monkeypatch, firmware_dir, tmp_path):
    """A fake idf.py on PATH records its arguments and writes the build id as the firmware's CMake does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    args_log = tmp_path / "args.txt"
    fake = bin_dir / "idf.py"
    fake.write_text("#!/bin/sh\n"
                    f'echo "$@" > {args_log}\n'
                    'while [ "$1" != "-B" ]; do shift; done; mkdir -p "$2"; echo cafe1234 > "$2/tinyml_build_id.txt"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    built = flash.build(firmware_dir, "esp32c3-usb", tmp_path / "cache", "0123456789abcdef0123")
    args = args_log.read_text().split()
    assert args[args.index("set-target") + 1] == "esp32c3"
    defaults = next(a for a in args if a.startswith("-DSDKCONFIG_DEFAULTS="))
    assert defaults.endswith("boards/esp32c3-usb.defaults")
    assert not any(a.startswith("-DTINYML_BUILD_ID") for a in args)
    assert (built.target, built.build_hash) == ("esp32c3-usb", "cafe1234")
    assert flash.build(firmware_dir, "esp32c3-usb", tmp_path / "cache", "0123456789abcdef0123") == built  # cached
    with pytest.raises(FirmwareError, match="no board configuration 'esp32c6'.*esp32c3-usb"):
        flash.build(firmware_dir, "esp32c6", tmp_path / "cache", "0123")


def test_concurrent_builds_of_one_config_run_idf_once(monkeypatch, firmware_dir, tmp_path):
    """Two processes (two xdist workers) wanting the same build: one runs idf.py, the other waits and reuses it."""
    from embedded_sim import fake_idf

    calls = tmp_path / "calls.txt"
    fake_idf(tmp_path / "bin", calls, seconds=1.0)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    code = ("import sys; from pathlib import Path; from pytest_tinyml.board import flash; "
            f"b = flash.build(Path({str(firmware_dir)!r}), 'esp32s3', Path({str(tmp_path / 'cache')!r}), 'ab' * 8); "
            "print(b.build_dir, b.build_hash)")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    build_dir, build_hash = outs[0].split()
    assert outs[0] == outs[1] and build_hash == (Path(build_dir) / "tinyml_build_id.txt").read_text().strip(), outs
    assert len(calls.read_text().splitlines()) == 1
