"""Statistics of metrics defined on summed per-unit statistics (pure numpy, explicit random generators).

Every metric is value = metric(S), S the column sums over resampling units of per-unit statistics vectors;
bootstraps and permutation tests reweight units and evaluate the metric on all replicates in one call.
"""

from csr_bench.stats.bootstrap import BootstrapCI, PairedBootstrap, bootstrap_ci, paired_bootstrap
from csr_bench.stats.corrections import benjamini_hochberg, holm
from csr_bench.stats.intervals import wilson_interval
from csr_bench.stats.mcnemar import McNemarResult, mcnemar_exact
from csr_bench.stats.normal import normal_cdf, normal_ppf
from csr_bench.stats.permutation import PermutationTest, paired_permutation_test
from csr_bench.stats.power import minimum_detectable_effect, units_needed
from csr_bench.stats.resampling import distinct_rows, resampled_sums, sign_flip_shifts

__all__ = [
    "BootstrapCI",
    "McNemarResult",
    "PairedBootstrap",
    "PermutationTest",
    "benjamini_hochberg",
    "bootstrap_ci",
    "distinct_rows",
    "holm",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "normal_cdf",
    "normal_ppf",
    "paired_bootstrap",
    "paired_permutation_test",
    "resampled_sums",
    "sign_flip_shifts",
    "units_needed",
    "wilson_interval",
]
