from spendstream.cli import main

main()
