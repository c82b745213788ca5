"""Build step: the example practice file and the translation catalogs, kept at the top of the checkout
for editing, ship inside the `bot` package so an installed bookingbot (wheel, pipx, container) has them."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithData(build_py):
    """build_py plus practice.example.toml and locales/<lang>/LC_MESSAGES/*.po copied into bot/."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them from the checkout
            return
        target = Path(self.build_lib) / "bot"
        shutil.copyfile(HERE / "practice.example.toml", target / "practice.example.toml")
        for po in (HERE / "locales").glob("*/LC_MESSAGES/*.po"):
            dest = target / "locales" / po.relative_to(HERE / "locales")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(po, dest)


setup(cmdclass={"build_py": BuildWithData})
