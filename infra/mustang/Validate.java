// Runs the Mustang validator (org.mustangproject:validator, from Maven Central through
// infra/mustang/pom.xml) on e-invoice files: a Factur-X/ZUGFeRD PDF (PDF/A-3 by veraPDF, the
// embedded XML) or a CII/UBL XML file (XML schema, EN 16931 schematron, XRechnung's when the
// document declares it). Mustang's command line (Mustang-CLI) is not published on Maven Central,
// so this launcher calls the validator's API; it runs as a single source file on the JDK:
//   java -cp 'var/mustang/libs/*' infra/mustang/Validate.java REPORT_DIR FILE...
// For each FILE it writes REPORT_DIR/<file name>.report.xml (Mustang's XML report) and prints
// "valid FILE" or "invalid FILE"; the exit status is 1 when any file is invalid.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.mustangproject.validator.ZUGFeRDValidator;

public class Validate {
    static final String ARITHMETIC_CRASH = "Item.enrichProductFromVATBreakdown";

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Validate REPORT_DIR FILE...");
            System.exit(2);
        }
        Path reports = Path.of(args[0]);
        Files.createDirectories(reports);
        boolean allValid = true;
        for (int i = 1; i < args.length; i++) {
            ZUGFeRDValidator validator = new ZUGFeRDValidator();
            String report = validator.validate(args[i]);
            if (!validator.wasCompletelyValid() && report.contains(ARITHMETIC_CRASH)) {
                // Mustang's own arithmetic check (not a rule of EN 16931) dies on a line without
                // a VAT rate, which is what BR-O-05 requires of a "not subject" (O) line: that
                // file is validated again without it. The schema and schematron still run, and
                // the schematron checks the totals (BR-CO-10..16).
                validator = new ZUGFeRDValidator();
                validator.disableArithmeticCheck();
                report = validator.validate(args[i]);
            }
            Path name = Path.of(args[i]).getFileName();
            Files.writeString(reports.resolve(name + ".report.xml"), report, StandardCharsets.UTF_8);
            boolean valid = validator.wasCompletelyValid();
            allValid &= valid;
            System.out.println((valid ? "valid " : "invalid ") + args[i]);
        }
        System.exit(allValid ? 0 : 1);
    }
}
