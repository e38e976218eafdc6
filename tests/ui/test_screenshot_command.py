import subprocess
import sys

from PySide6.QtGui import QImage


def test_screenshot_renders_every_page(tmp_path, qapp):
    result = subprocess.run([sys.executable, "-m", "llmdesk", "screenshot", str(tmp_path), "--gpu", "h100",
                             "--gpus", "2", "--theme", "dark", "--size", "1000x640", "--suffix=-dark"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["01-machine-dark.png", "02-models-dark.png", "03-server-dark.png", "04-dashboard-dark.png",
                     "05-chat-dark.png", "06-benchmark-dark.png", "07-deploy-dark.png", "08-settings-dark.png",
                     "09-start-dark.png"]
    image = QImage(str(tmp_path / "01-machine-dark.png"))
    assert (image.width(), image.height()) == (1000, 640)
    assert image.pixelColor(500, 300).lightness() < 90  # the dark theme really applied
