"""The hooks and fixture overrides ``--tinyml-board=embedded`` adds to a run where pytest-embedded is active.

Registered by ``plugin.pytest_configure`` only then (after pytest-embedded's plugin, so these fixtures override
its ``app_path``, ``build_dir``, ``skip_autoflash`` and ``app``, the way idf-ci overrides ``target``). For a test
that does not use ``tinyml_board`` each fixture hands pytest-embedded's own value through unchanged.

- Target routing (:mod:`~pytest_tinyml.board.embedded_targets`): ``kind=`` becomes pytest-embedded's ``target``
  parameter and a marker; a session without a dut of that kind deselects the test.
- The app (:mod:`~pytest_tinyml.board.embedded_app`): with the idf service, the app pytest-embedded flashes is
  checked to be tinyml-bench, or is pytest-tinyml's own build when the test names none; ``--tinyml-skip-flash``
  is pytest-embedded's ``--skip-autoflash`` for the test's dut.
"""

from __future__ import annotations

import pytest

from pytest_tinyml import options
from pytest_tinyml.board import embedded_app, embedded_targets

NAME = "tinyml-embedded"


class EmbeddedSession:
    """Registered as ``tinyml-embedded`` under ``--tinyml-board=embedded`` when pytest-embedded is active."""

    def pytest_generate_tests(self, metafunc):
        embedded_targets.parametrize(metafunc)

    @pytest.hookimpl(tryfirst=True)  # before pytest's own -m / -k deselection, which must see the kind markers
    def pytest_collection_modifyitems(self, config, items):
        embedded_targets.route(config, items)

    @pytest.fixture
    def app_path(self, request, app_path):
        build, index = embedded_app.our_build(request)
        if build is None:
            return app_path
        from pytest_tinyml.board import flash

        fw_dir = flash.locate_firmware_dir(options.of(request.config).firmware_dir)
        return embedded_app.replaced(app_path, index, str(fw_dir))

    @pytest.fixture
    def build_dir(self, request, build_dir):
        build, index = embedded_app.our_build(request)
        return build_dir if build is None else embedded_app.replaced(build_dir, index, str(build.build_dir))

    @pytest.fixture
    def skip_autoflash(self, request, skip_autoflash):
        if not embedded_app.uses_board(request) or not options.of(request.config).skip_flash:
            return skip_autoflash
        index = embedded_app.dut_index(request)
        return True if index is None else embedded_app.replaced(skip_autoflash, index, True)

    @pytest.fixture
    def app(self, request, app):
        _, index = embedded_app.our_build(request)
        if index is not None:
            services = str(embedded_app.at(request.getfixturevalue("embedded_services"), index) or "")
            if "idf" in services.split(","):
                embedded_app.check_app(embedded_app.at(app, index), request, index)
        return app
