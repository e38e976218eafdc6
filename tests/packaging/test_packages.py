"""packaging/build from this checkout, then the .deb and the tarball used as a user would: the .deb
unpacked with dpkg-deb -x, its CLI and its window (offscreen) run; the tarball's install.sh into a
fresh home and its uninstall, which must leave that home as it found it.

The build takes a minute or two (a venv under build/ is reused between runs)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "io.github.llmdesk"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)

pytestmark = [pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb builds the .deb"),
              pytest.mark.timeout(1800)]  # the first test also waits for the build


def build_module():
    loader = importlib.machinery.SourceFileLoader("llmdesk_build", str(ROOT / "packaging" / "build"))
    spec = importlib.util.spec_from_loader("llmdesk_build", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([str(ROOT / "packaging" / "build"), "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def deb_root(built, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deb-root")
    subprocess.run(["dpkg-deb", "-x", built["deb"], str(root)], check=True)
    return root


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A new user's environment: their own home, no llmdesk or Hugging Face variables of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMDESK_", "HF_", "XDG_"))}
    return {**env, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen", **extra}


def test_the_deb_installs_the_app_launcher_entry_icons_and_metainfo(built, deb_root):
    app = deb_root / "opt" / "llmdesk" / "llmdesk"
    assert app.is_file() and os.access(app, os.X_OK)
    assert os.readlink(deb_root / "usr" / "bin" / "llmdesk") == "/opt/llmdesk/llmdesk"
    share = deb_root / "usr" / "share"
    desktop = (share / "applications" / f"{APP_ID}.desktop").read_text()
    assert "Exec=llmdesk %U" in desktop and f"Icon={APP_ID}" in desktop
    for size in ICON_SIZES:
        assert (share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png").stat().st_size > 0
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    assert (share / "metainfo" / f"{APP_ID}.metainfo.xml").is_file()
    fields = subprocess.run(["dpkg-deb", "-f", built["deb"], "Package", "Version", "Depends", "Installed-Size"],
                            capture_output=True, text=True, check=True).stdout
    assert "Package: llmdesk" in fields and "libgl1" in fields and "libegl1" in fields
    assert "python3-venv" in fields  # vLLM's runtime is made from the system's Python
    installed_kib = int(fields.split("Installed-Size:")[1].split()[0])
    assert installed_kib * 1024 <= 250 * 1000 * 1000


def test_no_nvidia_driver_library_is_bundled(deb_root):
    names = [p.name for p in (deb_root / "opt" / "llmdesk").rglob("*")]
    assert not [n for n in names if n.startswith(("libcuda", "libnvidia-ml", "libnvidia-"))]


def test_the_build_refuses_a_bundle_with_a_driver_library_or_too_large(tmp_path):
    build = build_module()
    bundle = tmp_path / "bundle"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "_internal" / "libnvidia-ml.so.1").write_bytes(b"x")
    with pytest.raises(SystemExit, match="refusing to ship NVIDIA driver libraries"):
        build.check_bundle(bundle)
    (bundle / "_internal" / "libnvidia-ml.so.1").unlink()
    with open(bundle / "_internal" / "big", "wb") as f:
        f.truncate(251 * 1000 * 1000)  # sparse: costs no disk
    with pytest.raises(SystemExit, match="over the 250 MB limit"):
        build.check_bundle(bundle)


def test_the_desktop_entry_and_metainfo_are_valid(deb_root):
    share = deb_root / "usr" / "share"
    for argv in (["desktop-file-validate", str(share / "applications" / f"{APP_ID}.desktop")],
                 ["appstreamcli", "validate", "--no-net", str(share / "metainfo" / f"{APP_ID}.metainfo.xml")]):
        if shutil.which(argv[0]) is None:
            pytest.skip(f"{argv[0]} is not installed (apt-get install desktop-file-utils appstream)")
        done = subprocess.run(argv, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_bundled_cli_works_without_python_or_the_source(deb_root, tmp_path):
    app = str(deb_root / "opt" / "llmdesk" / "llmdesk")
    env = clean_env(tmp_path / "home", PYTHONPATH="", PATH="/usr/bin:/bin")
    run = lambda *args: subprocess.run([app, *args], env=env, cwd=tmp_path, capture_output=True, text=True,  # noqa: E731
                                       timeout=120)
    assert run("--version").stdout.startswith("llmdesk ")
    gpus = run("gpus", "--json")
    assert gpus.returncode == 0 and isinstance(json.loads(gpus.stdout), list)
    doctor = run("doctor", "--json")
    assert doctor.returncode in (0, 1) and json.loads(doctor.stdout)
    runtime = json.loads(run("runtime", "--json").stdout)
    # vLLM is never started with the app's own executable
    assert runtime["runtime"] is None or runtime["runtime"]["python"] != app
    assert any("packaged app" in t["why"] for t in runtime["tried"])
    for command in ("gui", "gpus", "doctor", "fit", "serve", "chat", "chats", "metrics", "bench", "export", "runtime",
                    "search", "variants", "pull", "models", "rm", "screenshot"):
        helped = run(command, "--help")
        assert helped.returncode == 0 and "usage: llmdesk " + command in helped.stdout, (command, helped.stderr)
    config = ROOT / "tests" / "data" / "configs" / "Qwen__Qwen2.5-7B-Instruct.json"
    fit = run("fit", str(config), "--parameters", "7615616512", "--gpu", "H100", "--json")
    assert fit.returncode == 0 and json.loads(fit.stdout)["verdict"] == "fits"
    assert json.loads(run("models", "--json").stdout) == [] and json.loads(run("chats", "--json").stdout) == []
    assert json.loads(run("runtime", "list", "--json").stdout)["runtimes"] == []
    # the Deploy exports validate inside the bundle: Kubernetes' schemas, the vendored CRD/compose/chart ones
    for fmt in ("k8s", "compose", "helm"):
        exported = run("export", fmt, "meta-llama/Llama-3.1-8B-Instruct", "--autoscale", "keda",
                       "--out", str(tmp_path / fmt))
        assert exported.returncode == 0, (fmt, exported.stderr)
        assert "valid" in (tmp_path / fmt / "README.md").read_text() and "INVALID" not in exported.stderr
    shots = run("screenshot", str(tmp_path / "shots"))
    assert shots.returncode == 0, shots.stderr
    assert len(list((tmp_path / "shots").glob("*.png"))) == 9
    assert "Traceback" not in gpus.stderr + doctor.stderr + shots.stderr


def test_install_sh_installs_for_one_user_and_uninstall_leaves_the_home_as_it_was(built, tmp_path):
    with tarfile.open(built["tarball"]) as tar:
        tar.extractall(tmp_path / "unpacked", filter="tar")
    (top,) = (tmp_path / "unpacked").iterdir()
    home = tmp_path / "home"
    (home / ".local" / "share" / "applications").mkdir(parents=True)
    (home / ".local" / "share" / "applications" / "other.desktop").write_text("[Desktop Entry]\n")  # not ours
    before = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    env = clean_env(home, PATH="/usr/bin:/bin")
    installed = subprocess.run([str(top / "install.sh")], env=env, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    launcher = home / ".local" / "bin" / "llmdesk"
    desktop = (home / ".local" / "share" / "applications" / f"{APP_ID}.desktop").read_text()
    assert f"Exec={launcher} %U" in desktop
    assert (home / ".local" / "share" / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png").is_file()
    used = subprocess.run([str(launcher), "chats", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert used.returncode == 0 and json.loads(used.stdout) == []  # the app ran and made its folders
    assert (home / ".local" / "share" / "llmdesk").is_dir()

    kept = subprocess.run([str(top / "install.sh"), "--uninstall"], env=env, capture_output=True, text=True)
    assert kept.returncode == 0 and not launcher.exists()
    assert (home / ".local" / "share" / "llmdesk").is_dir()  # chats stay unless asked
    assert subprocess.run([str(top / "install.sh")], env=env, capture_output=True).returncode == 0  # again
    purged = subprocess.run([str(top / "install.sh"), "--uninstall", "--purge"], env=env, capture_output=True,
                            text=True)
    assert purged.returncode == 0, purged.stderr
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == before
