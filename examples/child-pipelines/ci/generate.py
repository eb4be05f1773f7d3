"""Print a child pipeline with one unittest job per service directory."""

import sys
from pathlib import Path

root = Path(sys.argv[1])
print("stages: [test, smoke]")
for service in sorted(p.name for p in root.iterdir() if p.is_dir()):
    print(f"""
test-{service}:
  stage: test
  script:
    - echo "testing {service} for $APP_NAME (source $CI_PIPELINE_SOURCE)"
    - python3 -m unittest discover -s {root}/{service} -v
""")
print("""
smoke:
  stage: smoke
  variables:
    GIT_STRATEGY: none   # only the archive from the parent, no source tree
  needs:
    - pipeline: $PARENT_PIPELINE_ID
      job: package
  script:
    - test ! -e services
    - python3 -m zipfile -l dist/app.zip
""")
