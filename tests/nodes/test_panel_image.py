"""The farm/panel image's recipe and the host's part of its build, without Docker.

What goes in (the app's files, the interpreter without its test suite and Tk, the
pinned wheels), what the tag follows, and the checks the build makes. The image itself
needs Docker and root: the integrator builds it and asks it for /healthz and a hashed
static file (docs/plans/multi-node.md C13).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nodes.images import EXTRA_ROLES, ROLES, ImageBuildError, build_images, local_image_map
from nodes.images import recipes as all_recipes
from nodes.images.builder import panel, panel_build
from nodes.images.builder.recipes import ImageRecipe, RecipeFile

ROOT = Path(__file__).resolve().parents[2]


def _recipe() -> ImageRecipe:
    return all_recipes()["panel"]


def test_the_panel_image_is_built_only_when_asked_for_and_has_a_content_tag():
    assert "panel" in EXTRA_ROLES and "panel" not in ROLES
    assert "panel" not in local_image_map()
    recipe = _recipe()
    assert recipe.unavailable == ""  # this venv has the panel extra and a pyenv Python
    assert re.fullmatch(r"farm/panel:[0-9a-f]{12}", recipe.content_tag())
    assert {"libmariadb3", "restic", "tini", "busybox", "ca-certificates"} <= set(recipe.packages)
    files = {f.path: f for f in recipe.files}
    dockerfile = files["Dockerfile"].data.decode()
    assert "FROM ${ROOTFS}" in dockerfile
    assert "FARM_STATIC_WHITENOISE=1" in dockerfile and "USER panel" in dockerfile
    assert '"gunicorn", "farm.wsgi:application"' in dockerfile
    assert "http://127.0.0.1:8000/healthz" in dockerfile
    # What the recipe lays in itself stays out of the Docker build context.
    assert files[".dockerignore"].data.decode().split("\n")[1:3] == ["app", "rootfs"]
    assert files["rootfs/etc/ld.so.conf.d/farm-python.conf"].data == b"/opt/python/lib\n"
    assert "app/manage.py" in files and "app/farm/health.py" in files


def test_the_post_install_commands_install_offline_and_collect_static_files():
    steps = _recipe().post_install
    assert steps[0] == ("ldconfig",)  # before anything runs /opt/python/bin/python3
    install = next(argv for argv in steps if "install" in argv and "pip" in argv)
    assert "--no-index" in install and panel.WHEELS_INSIDE in install
    collect = steps[-1]
    assert collect[-4:] == ("collectstatic", "--noinput", "-v", "0")
    assert "FARM_STATIC_WHITENOISE=1" in collect and f"FARM_VAR_DIR={panel.PANEL_VAR}" in collect
    # A key of its own, so settings never write a development key into the image.
    assert any(part.startswith("SECRET_KEY=") for part in collect)


def test_the_app_is_the_tracked_files_of_the_apps_templates_static_and_manage_py():
    tracked = [
        "manage.py",
        "pyproject.toml",
        "README.md",
        "farm/settings.py",
        "farm/migrations/0001_initial.py",
        "nodes/images/builder/recipes.py",
        "nodes/images/builder/panel.py",
        "nodes/images/builder/node/farm-node-init",
        "nodes/images/builder/panel/Dockerfile",
        "nodes/images/builder/wordpress/debs/farm-wordpress-shim/DEBIAN/control",
        "sites/__pycache__/models.cpython-313.pyc",
        "templates/base.html",
        "static/farm/farm.css",
        "tests/farm/test_health.py",
        "benchmarks/density.py",
        "docs/plans/multi-node.md",
        "scripts/lib.sh",
        "farmer/x.py",
    ]
    assert panel.select_app_paths(tracked) == [
        "farm/migrations/0001_initial.py",
        "farm/settings.py",
        "manage.py",
        "nodes/images/builder/panel.py",
        "nodes/images/builder/recipes.py",
        "static/farm/farm.css",
        "templates/base.html",
    ]


def test_the_real_checkout_gives_every_app_module_and_no_test():
    paths, why = panel.tracked_files(ROOT)
    assert why == ""
    chosen = panel.select_app_paths(paths)
    assert {"manage.py", "farm/wsgi.py", "farm/health.py", "static/farm/farm.css"} <= set(chosen)
    assert not [p for p in chosen if p.startswith(("tests/", "docs/", "benchmarks/"))]


@pytest.mark.parametrize(
    ("rel", "excluded"),
    [
        ("lib/python3.13/test/test_os.py", True),
        ("lib/python3.13/test", True),
        ("lib/python3.13/tkinter/__init__.py", True),
        ("lib/python3.13/idlelib/idle.py", True),
        ("lib/python3.13/turtledemo/clock.py", True),
        ("lib/python3.13/site-packages/_sandboxing_egress_ca.pth", True),
        ("lib/python3.13/site-packages/pip/__init__.py", True),
        ("lib/python3.13/config-3.13-x86_64-linux-gnu/libpython3.13.a", True),
        ("lib/python3.13/lib-dynload/_tkinter.cpython-313-x86_64-linux-gnu.so", True),
        ("lib/python3.13/lib-dynload/_testcapi.cpython-313-x86_64-linux-gnu.so", True),
        ("lib/python3.13/lib-dynload/xxlimited.cpython-313-x86_64-linux-gnu.so", True),
        ("lib/python3.13/__pycache__/os.cpython-313.pyc", True),
        ("include/python3.13/Python.h", True),
        ("bin/idle3.13", True),
        ("bin/pip3", True),
        ("bin/python3.13-config", True),
        ("lib/python3.13/os.py", False),
        ("lib/python3.13/ensurepip/__init__.py", False),
        ("lib/python3.13/lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so", False),
        ("lib/python3.13/lib-dynload/_sqlite3.cpython-313-x86_64-linux-gnu.so", False),
        ("lib/python3.13/unittest/mock.py", False),  # the stdlib's, not the test suite
        ("lib/libpython3.13.so.1.0", False),
        ("bin/python3.13", False),
        ("bin/python3", False),
    ],
)
def test_what_of_the_interpreter_stays_out_of_the_image(rel, excluded):
    if "x86_64" in rel and "config-" in rel:
        rel = rel.replace("x86_64", panel.platform.machine())
    assert panel.excluded_from_interpreter(rel, "3.13") is excluded


def _fake_prefix(root: Path) -> Path:
    files = [
        "bin/python3.13",
        "bin/idle3.13",
        "lib/libpython3.13.so.1.0",
        "lib/python3.13/os.py",
        "lib/python3.13/test/test_os.py",
        "lib/python3.13/tkinter/__init__.py",
        "lib/python3.13/site-packages/host.pth",
        "lib/python3.13/lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so",
        "lib/python3.13/lib-dynload/_testcapi.cpython-313-x86_64-linux-gnu.so",
        "lib/python3.13/json/__pycache__/decoder.cpython-313.pyc",
        "lib/python3.13/json/decoder.py",
        "include/python3.13/Python.h",
    ]
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"\x7fELF..." if rel.endswith((".so", ".0", "3.13")) else b"x")
    (root / "bin" / "python3").symlink_to("python3.13")
    return root


def test_copying_the_interpreter_leaves_out_the_excluded_paths_and_keeps_symlinks(tmp_path):
    prefix = _fake_prefix(tmp_path / "prefix")
    dest = tmp_path / "rootfs" / "opt" / "python"
    assert panel_build.copy_interpreter(prefix, "3.13", dest) == 5
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if not p.is_dir())
    assert copied == [
        "bin/python3",
        "bin/python3.13",
        "lib/libpython3.13.so.1.0",
        "lib/python3.13/json/decoder.py",
        "lib/python3.13/lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so",
        "lib/python3.13/os.py",
    ]
    assert (dest / "bin" / "python3").readlink() == Path("python3.13")
    assert (dest / "lib" / "python3.13" / "site-packages").is_dir()  # empty, for pip
    assert panel_build.shared_objects(tmp_path / "rootfs") == [
        "/opt/python/bin/python3.13",
        "/opt/python/lib/libpython3.13.so.1.0",
        "/opt/python/lib/python3.13/lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so",
    ]


def _fake_metadata(packages: dict[str, tuple[str, list[str]]]):
    return lambda name: packages.get(name)


def test_the_wheels_are_the_closure_pinned_to_the_installed_versions():
    installed = _fake_metadata(
        {
            "django": ("6.1.3", ["asgiref>=3.9", 'tzdata; sys_platform == "win32"']),
            "asgiref": ("3.13.0", []),
            "django-allauth": ("65.22.1", ["Django>=4.2", 'fido2>=1.1; extra == "mfa"']),
            "fido2": ("2.2.1", ["cryptography>=2.6"]),
            "cryptography": ("50.0.2", ['cffi>=2; platform_python_implementation != "PyPy"']),
            "cffi": ("2.1.1", []),
            "gunicorn": ("27.0.1", ['eventlet; extra == "eventlet"']),
        }
    )
    pins, problems = panel.pin_closure(
        ["django>=6.1,<6.2", "django-allauth[mfa]>=65.22", "gunicorn>=23"], installed
    )
    assert problems == []
    assert pins == [
        "asgiref==3.13.0",
        "cffi==2.1.1",
        "cryptography==50.0.2",
        "django-allauth==65.22.1",
        "django==6.1.3",
        "fido2==2.2.1",
        "gunicorn==27.0.1",
    ]
    without_extra, _ = panel.pin_closure(["django-allauth>=65"], installed)
    assert "fido2==2.2.1" not in without_extra


def test_a_venv_without_the_panel_extra_makes_the_recipe_unavailable_and_says_why(
    monkeypatch,
):
    real = panel.pin_closure
    lacking = {"gunicorn", "whitenoise"}

    def without_extra(top, lookup=panel.installed):
        return real(top, lambda name: None if name in lacking else lookup(name))

    monkeypatch.setattr(panel, "pin_closure", without_extra)
    recipe = _recipe()
    assert "gunicorn<28,>=23 is not installed" in recipe.unavailable
    assert "ensure_venv" in recipe.unavailable
    _, problems = real(["gunicorn>=28"], _fake_metadata({"gunicorn": ("27.0.1", [])}))
    assert problems == ["gunicorn 27.0.1 is installed, gunicorn>=28 is needed"]
    # Building it stops before Docker is asked anything; the other images do not care.
    with pytest.raises(ImageBuildError, match=r"panel: cannot build here: .*gunicorn"):
        build_images(object(), cache_dir=Path("/nonexistent"), roles=["panel"])  # type: ignore[arg-type]
    assert set(local_image_map()) == set(ROLES)


def test_a_system_python_cannot_go_into_the_image(monkeypatch):
    monkeypatch.setattr(panel.sys, "base_prefix", "/usr")
    interpreter, why = panel.host_interpreter()
    assert interpreter is None and "system-wide Python" in why


def _git_checkout(root: Path) -> Path:
    for rel in ("manage.py", "farm/views.py", "static/farm/farm.css", "tests/test_x.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)
    return root


def test_the_tag_follows_the_app_files_the_interpreter_and_the_pins_only(tmp_path, monkeypatch):
    monkeypatch.setattr(panel, "CHECKOUT", _git_checkout(tmp_path / "checkout"))

    def tags() -> dict[str, str]:
        return {role: recipe.content_tag() for role, recipe in all_recipes().items()}

    first = tags()
    assert tags() == first
    assert {f.path for f in _recipe().files if f.path.startswith("app/")} == {
        "app/manage.py",
        "app/farm/views.py",
        "app/static/farm/farm.css",
    }
    (tmp_path / "checkout" / "tests" / "test_x.py").write_text("# not the app\n")
    (tmp_path / "checkout" / "farm" / "untracked.py").write_text("# not tracked\n")
    assert tags() == first
    (tmp_path / "checkout" / "farm" / "views.py").write_text("# changed\n")
    after_app = tags()
    assert {r for r in after_app if after_app[r] != first[r]} == {"panel"}

    real_interpreter = panel.host_interpreter

    def rebuilt_python():
        interpreter, why = real_interpreter()
        assert interpreter is not None
        return panel.Interpreter(interpreter.prefix, interpreter.pyver, "CPython 3.13.1"), why

    monkeypatch.setattr(panel, "host_interpreter", rebuilt_python)
    after_python = tags()
    assert after_python["panel"] != after_app["panel"]

    real_pins = panel.pin_closure
    monkeypatch.setattr(panel, "pin_closure", lambda top: (real_pins(top)[0] + ["zzz==1.0"], []))
    assert tags()["panel"] != after_python["panel"]


def test_cached_wheels_are_found_by_name_version_and_python(tmp_path):
    for name in (
        "Django-6.1.3-py3-none-any.whl",
        "mysqlclient-2.3.2-cp313-cp313-linux_x86_64.whl",
        "bcrypt-5.0.0-cp312-cp312-linux_x86_64.whl",  # another Python's
        "not-a-wheel.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    found, missing = panel_build.find_wheels(
        tmp_path, ["django==6.1.3", "mysqlclient==2.3.2", "bcrypt==5.0.0", "redis==7.0.0"]
    )
    assert {pin: path.name for pin, path in found.items()} == {
        "django==6.1.3": "Django-6.1.3-py3-none-any.whl",
        "mysqlclient==2.3.2": "mysqlclient-2.3.2-cp313-cp313-linux_x86_64.whl",
    }
    assert missing == ["bcrypt==5.0.0", "redis==7.0.0"]


def test_pip_wheel_runs_only_for_the_pins_the_cache_lacks(tmp_path, monkeypatch):
    wheels = tmp_path / "panel-wheels"
    wheels.mkdir()
    (wheels / "django-6.1.3-py3-none-any.whl").write_bytes(b"")
    calls: list[list[str]] = []

    def fake_pip(argv, **kwargs):
        calls.append(list(argv))
        listed = Path(argv[argv.index("-r") + 1]).read_text().split()
        assert listed == ["redis==7.0.0"]
        (wheels / "redis-7.0.0-py3-none-any.whl").write_bytes(b"")
        return ""

    monkeypatch.setattr(panel_build, "run", fake_pip)
    got = panel_build.ensure_wheels(wheels, ["django==6.1.3", "redis==7.0.0"], lambda _m: None)
    assert [p.name for p in got] == [
        "django-6.1.3-py3-none-any.whl",
        "redis-7.0.0-py3-none-any.whl",
    ]
    (argv,) = calls
    assert argv[1:4] == ["-m", "pip", "wheel"] and "--no-deps" in argv
    assert argv[argv.index("--wheel-dir") + 1] == str(wheels)
    # A second time, the cache has both: the index is not asked.
    monkeypatch.setattr(panel_build, "run", lambda *a, **k: pytest.fail("pip asked again"))
    assert len(panel_build.ensure_wheels(wheels, ["django==6.1.3", "redis==7.0.0"], print)) == 2

    monkeypatch.setattr(panel_build, "run", lambda *a, **k: "")
    with pytest.raises(ImageBuildError, match=r"no installable wheel for nothing==1\.0"):
        panel_build.ensure_wheels(wheels, ["nothing==1.0"], lambda _m: None)


def test_unresolved_libraries_are_read_from_ldd_output():
    output = (
        "/opt/python/bin/python3.13:\n"
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibpython3.13.so.1.0 => /opt/python/lib/libpython3.13.so.1.0 (0x00007f62)\n"
        "/opt/python/lib/python3.13/lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so:\n"
        "\tlibssl.so.3 => not found\n"
        "\tlibcrypto.so.3 => not found\n"
        "/opt/python/lib/python3.13/site-packages/x.so:\n"
        "\tstatically linked\n"
    )
    assert panel_build.unresolved_libraries(output) == {
        "/opt/python/lib/python3.13/lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so": [
            "libssl.so.3",
            "libcrypto.so.3",
        ]
    }


def test_laying_the_host_files_puts_interpreter_wheels_app_and_loader_config_in(
    tmp_path, monkeypatch
):
    prefix = _fake_prefix(tmp_path / "prefix")
    description = "CPython 3.13.0 test"
    monkeypatch.setattr(
        panel_build,
        "host_interpreter",
        lambda: (panel.Interpreter(prefix, "3.13", description), ""),
    )
    wheel = tmp_path / "django-6.1.3-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    monkeypatch.setattr(panel_build, "ensure_wheels", lambda wheel_dir, pins, progress: [wheel])
    recipe = ImageRecipe(
        role="panel",
        packages=panel.PANEL_PACKAGES,
        files=(
            RecipeFile("Dockerfile", b"FROM ${ROOTFS}\n"),
            RecipeFile("rootfs/etc/ld.so.conf.d/farm-python.conf", b"/opt/python/lib\n"),
            RecipeFile("app/manage.py", b"# manage\n"),
            RecipeFile("app/farm/settings.py", b"# settings\n"),
        ),
        suite="bookworm",
        inputs=(("python", description), ("wheels", "django==6.1.3")),
    )
    rootfs = tmp_path / "rootfs"
    panel_build.PanelHostFiles(recipe, tmp_path / "cache", lambda _m: None).lay(rootfs)
    assert (rootfs / "opt/python/lib/python3.13/os.py").exists()
    assert not (rootfs / "opt/python/lib/python3.13/test").exists()
    assert (rootfs / "farm-build/wheels" / wheel.name).read_bytes() == b"PK"
    assert (rootfs / "farm-build/panel-requirements.txt").read_text() == "django==6.1.3\n"
    assert (rootfs / "opt/panel/farm/settings.py").read_bytes() == b"# settings\n"
    assert (rootfs / "etc/ld.so.conf.d/farm-python.conf").exists()
    assert not (rootfs / "Dockerfile").exists() and not (rootfs / "opt/panel/Dockerfile").exists()

    changed = ImageRecipe(**{**recipe.__dict__, "inputs": (("python", "CPython 3.12"),)})
    with pytest.raises(ImageBuildError, match="interpreter changed"):
        panel_build.PanelHostFiles(changed, tmp_path / "cache", print).lay(tmp_path / "again")
