"""Print the search space of a config's FLOPs budget and its FLOPs table as one JSON object.

Example: python tools/flops_table.py --cfg configs/train.yaml SUPERNET.FLOPS_MAXIMUM 20
No training: layers per stage, resolution, fixed FLOPs/params and the per-op costs (MMACs, M params).
"""
import argparse
import json
import sys

from lib.config import load_config
from lib.errors import CreamError
from lib.search.flops import FlopsBudgetError, build_flops_table, build_search_space


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cfg', default=None, help='yaml config (defaults when omitted)')
    parser.add_argument('opts', nargs=argparse.REMAINDER, help='KEY VALUE overrides')
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.cfg, args.opts)
        space = build_search_space(cfg)
        table = build_flops_table(cfg, space)
    except (CreamError, FlopsBudgetError) as err:
        sys.exit(f'error: {err}')
    result = {'flops_budget_M': [cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM], **table.to_dict()}
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
