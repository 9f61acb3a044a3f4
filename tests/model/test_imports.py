import subprocess
import sys


def test_model_library_imports_without_loading_transformers():
    code = (
        "import sys, pipeline.model.closp, pipeline.model.loss, pipeline.model.location; "
        "heavy = [m for m in ('transformers', 'sentence_transformers', 'timm', 'torchvision') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
