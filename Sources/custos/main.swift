import CustosCLI

await CustosCommand.runMain()
