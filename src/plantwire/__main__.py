from plantwire.cli import main

main()
