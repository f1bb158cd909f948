import sys

from imagetags.tests.bench import run

sys.exit(run.main(sys.argv[1:]))
