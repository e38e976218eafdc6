"""The kernel choice lines of a vLLM 0.26 start-up log, in the forms vLLM's source writes them."""

from llmdesk.core.fit.vllm_kernel_log import KernelChoice, kernel_choices, short_name

LOG = """\
(EngineCore pid=1067) INFO 12-06 19:41:45 [auto_gptq.py:357] Using MacheteLinearKernel for AutoGPTQLinearMethod
(EngineCore pid=1067) INFO 12-06 19:41:45 [auto_gptq.py:357] Using MacheteLinearKernel for AutoGPTQLinearMethod
(EngineCore pid=1067) INFO 12-06 19:41:46 [__init__.py:671] Selected CutlassFP8ScaledMMLinearKernel for Fp8LinearMethod
(EngineCore pid=1067) INFO 12-06 19:41:46 [__init__.py:799] Using FlashInferMxfp8LinearKernel for MXFP8 GEMM
(EngineCore pid=1122) INFO 12-07 07:04:46 [mxfp4.py:1718] Using MoEPrepareAndFinalizeNoDPEPMonolithic
(EngineCore pid=1122) INFO 12-07 07:04:46 [mxfp4.py:1719] Using OAITritonMxfp4ExpertsMonolithic
(EngineCore pid=1067) INFO 12-06 19:41:50 [model_runner.py:305] Model loading took 5.4 GiB and 4.3 seconds
(APIServer pid=1000) INFO 12-06 19:41:51 [api_server.py:1] Using the default chat template for the model
"""


def test_each_choice_once_in_order():
    assert kernel_choices(LOG) == (KernelChoice("MacheteLinearKernel", "AutoGPTQLinearMethod"),
                                   KernelChoice("CutlassFP8ScaledMMLinearKernel", "Fp8LinearMethod"),
                                   KernelChoice("FlashInferMxfp8LinearKernel", "MXFP8 GEMM"),
                                   KernelChoice("OAITritonMxfp4ExpertsMonolithic", "MoE experts"))


def test_no_choice_in_a_plain_log_and_short_names():
    assert kernel_choices("INFO Model loading took 15.0 GiB\n") == ()
    assert short_name("MacheteLinearKernel") == "Machete" and short_name("MarlinExperts") == "Marlin"
    assert short_name("CutlassFP8ScaledMMLinearKernel") == "CutlassFP8ScaledMM"
    assert short_name("OAITritonMxfp4ExpertsMonolithic") == "OAITritonMxfp4"
