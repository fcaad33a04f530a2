/* Run by tests/dev/run.sh with ACPICA's acpiexec against nestor's DSDT: the PCI
 * interrupt link LNKA's _SRS, _STA, _CRS and _DIS through the router register PRQA
 * (acpiexec keeps the PCI_Config region in memory, zero at the start), leaving PRQD
 * alone, and \_PIC recording the model in \PICF. \TRTE returns 0, else a bit per
 * failed check. */
DefinitionBlock ("", "SSDT", 2, "NESTOR", "ROUTING", 1)
{
    External (\_PIC, MethodObj)
    External (\PICF, IntObj)
    External (\_SB.PCI0.LPC.PRQA, FieldUnitObj)
    External (\_SB.PCI0.LPC.PRQD, FieldUnitObj)
    External (\_SB.LNKA, DeviceObj)
    External (\_SB.LNKA._SRS, MethodObj)
    External (\_SB.LNKA._STA, MethodObj)
    External (\_SB.LNKA._CRS, MethodObj)
    External (\_SB.LNKA._DIS, MethodObj)
    Method (TRTE, 0, Serialized)
    {
        Local0 = Zero
        \_SB.PCI0.LPC.PRQD = 0x0B
        Name (RT, ResourceTemplate () { Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) { 5 } })
        \_SB.LNKA._SRS (RT)
        If (\_SB.PCI0.LPC.PRQA != 5) { Local0 |= 1 }
        If (\_SB.LNKA._STA () != 0x0B) { Local0 |= 2 }
        Local1 = \_SB.LNKA._CRS ()
        CreateDWordField (Local1, 5, IRQ1)
        If (IRQ1 != 5) { Local0 |= 4 }
        \_SB.LNKA._DIS ()
        If (\_SB.PCI0.LPC.PRQA != 0x85) { Local0 |= 8 }
        If (\_SB.LNKA._STA () != 0x09) { Local0 |= 0x10 }
        Local2 = \_SB.LNKA._CRS ()
        CreateDWordField (Local2, 5, IRQ2)
        If (IRQ2 != 0) { Local0 |= 0x20 }
        If (\_SB.PCI0.LPC.PRQD != 0x0B) { Local0 |= 0x40 }
        If (\PICF != 0) { Local0 |= 0x80 }
        \_PIC (1)
        If (\PICF != 1) { Local0 |= 0x100 }
        Return (Local0)
    }
}
